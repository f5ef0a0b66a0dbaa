"""Single-image generators (SinGAN, InGAN): training from one photo, and their audit.

- ``training_image``: the one image a model learns, as a float tensor in [-1, 1] at a capped size.
- ``singan_training`` / ``ingan_training``: the training loops of ``generators.singan`` / ``generators.ingan``.
- ``local_features``, ``sifid``, ``diversity``, ``copies``: the audit of a single-image generator (SIFID per
  sample, diversity, copy detection against the training image's patches).
"""
