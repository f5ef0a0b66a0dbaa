"""Units inside a generator: hooks on named layers, streaming unit statistics, rarely activated neurons and
sequential ablation (Choi, Chang & Choi, IJCAI 2022), and what a generator over- or under-produces.

- ``hooks``: ``layer_hooks`` (observe or replace named layers' outputs), ``resolve_layers``;
- ``monitored``: ``default_monitored_layers`` per registered architecture, ``architecture_of``;
- ``batches``: ``seeded_latents`` (the latents of ``sample_images``), the batch loop with progress and
  cancellation;
- ``statistics``: ``compute_unit_statistics`` -> ``UnitStatistics`` (frequencies, moments, quantiles;
  safetensors save/load), ``ChannelHistogram``;
- ``rare``: ``rare_neurons``, ``artifact_scores``, ``sequential_ablation``;
- ``figures``: before/after grids, mask overlays, ``save_ablation``;
- ``mode_collapse``: k-means / class frequencies of real vs generated, Fréchet distance of per-image
  histograms, bar chart.

Importing this package imports nothing else; the modules need torch.
"""
