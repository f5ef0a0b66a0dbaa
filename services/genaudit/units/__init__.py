"""Units inside a generator: hooks on named layers, streaming unit statistics, rarely activated neurons and
sequential ablation (Choi, Chang & Choi, IJCAI 2022), what a generator over- or under-produces, automatic
correction of artifact units (Tousi et al., CVPR 2021) and GAN dissection (Bau et al., ICLR 2019).

- ``hooks``: ``layer_hooks`` (observe or replace named layers' outputs), ``resolve_layers``;
- ``monitored``: ``default_monitored_layers`` per registered architecture, ``architecture_of``;
- ``batches``: ``seeded_latents`` (the latents of ``sample_images``), the batch loop with progress and
  cancellation;
- ``statistics``: ``compute_unit_statistics`` -> ``UnitStatistics`` (frequencies, moments, quantiles;
  safetensors save/load), ``ChannelHistogram``;
- ``rare``: ``rare_neurons``, ``artifact_scores``, ``sequential_ablation``;
- ``figures``: before/after grids, mask overlays, ``save_ablation``;
- ``mode_collapse``: k-means / class frequencies of real vs generated, Fréchet distance of per-image
  histograms, bar chart;
- ``interventions``: ``UnitIntervention`` (out = x (1 - a) + v a on a unit set: ablation, scaling, insertion,
  optional region), ``intervened``, ``generate``;
- ``flaws``: flaw scores (rare neurons, low realism, any detector) and ``label_flaws``;
- ``artifact_units``: Tousi et al. (CVPR 2021): artifact classifier, ``grad_cam``, defective unit scores,
  ``sequential_correction``, ``correct_artifact_units``;
- ``dissection``: GAN Dissection (Bau et al., ICLR 2019): streaming unit-concept IoU (``dissect``),
  ``causal_effect``.

Importing this package imports nothing else; the modules need torch.
"""
