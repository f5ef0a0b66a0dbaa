"""PNG figures and files of a sequential ablation: before/after grids, per-layer mask overlays.

Images are generator outputs in [-1, 1] made 8-bit by ``generators.sampling.to_uint8``; grids have 1 px
dark grey gutters. Overlays colour the mask with matplotlib's ``RdBu_r`` map on [0, vmax] (blue = nothing
ablated, red = the most), vmax = the largest mask value of the layer over all images (one scale per figure,
so images compare), blended over the image at opacity 0.5 -- the paper's figures use the same map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from safetensors.torch import save_file

from genaudit.errors import InvalidArgument
from genaudit.generators.sampling import to_uint8
from genaudit.reports.grids import GUTTER, image_grid, png_bytes
from genaudit.units.rare import AblationResult

_OVERLAY_OPACITY = 0.5
_OVERLAY_COLORMAP = "RdBu_r"


def before_after_grid(original: torch.Tensor, corrected: torch.Tensor, columns: int = 8) -> np.ndarray:
    """uint8 grid: for each run of ``columns`` images, a row of originals above the row of their corrections."""
    if original.shape != corrected.shape or original.shape[0] == 0:
        raise InvalidArgument(f"original {tuple(original.shape)} and corrected {tuple(corrected.shape)} must be "
                              "the same non-empty shape")
    if columns < 1:
        raise InvalidArgument(f"columns must be at least 1, got {columns}")
    before, after = to_uint8(original), to_uint8(corrected)
    n = before.shape[0]
    columns = min(columns, n)
    padded = -(-n // columns) * columns
    blank = np.full((padded - n, *before.shape[1:]), GUTTER, dtype=np.uint8)
    before, after = np.concatenate([before, blank]), np.concatenate([after, blank])
    rows = [part[start:start + columns] for start in range(0, padded, columns) for part in (before, after)]
    return image_grid(np.concatenate(rows), columns)


def mask_overlay_grid(images: torch.Tensor, masks: torch.Tensor, columns: int = 8) -> np.ndarray:
    """uint8 RGB grid of ``images`` (N, C, H, W) with ``masks`` (N, H, W) overlaid (module docstring)."""
    if masks.shape != (images.shape[0], *images.shape[-2:]):
        raise InvalidArgument(f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}")
    rgb = to_uint8(images).astype(np.float64)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    values = masks.detach().double().cpu().numpy()
    vmax = values.max(initial=0.0)
    colours = 255.0 * colormaps[_OVERLAY_COLORMAP](values / vmax if vmax > 0 else values)[..., :3]
    blended = (1 - _OVERLAY_OPACITY) * rgb + _OVERLAY_OPACITY * colours
    return image_grid(np.rint(blended).astype(np.uint8), columns)


def save_ablation(result: AblationResult, directory: str | Path, columns: int = 8) -> list[Path]:
    """Writes into ``directory`` (created if needed) and returns the paths:

    - ``before_after.png`` (``before_after_grid``); ``overlay_<layer>.png`` per monitored layer, the
      layer's mask over the original images (``mask_overlay_grid``);
    - ``corrected_<i>.png``: each corrected image, 8-bit;
    - ``ablation.safetensors``: ``original``, ``corrected`` (float32), ``ablated`` (int64 (N, L)) and
      ``mask/<layer>`` (float32 (N, H, W)).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = {out / "before_after.png": png_bytes(before_after_grid(result.original, result.corrected, columns))}
    for name, mask in result.masks.items():
        written[out / f"overlay_{name}.png"] = png_bytes(mask_overlay_grid(result.original, mask, columns))
    digits = len(str(max(len(result.corrected) - 1, 0)))
    for i, image in enumerate(to_uint8(result.corrected)):
        written[out / f"corrected_{i:0{digits}d}.png"] = png_bytes(image)
    for path, data in written.items():
        path.write_bytes(data)
    arrays = {"original": result.original, "corrected": result.corrected, "ablated": result.ablated}
    arrays.update({f"mask/{name}": mask for name, mask in result.masks.items()})
    tensors_path = out / "ablation.safetensors"
    save_file({k: v.contiguous() for k, v in arrays.items()}, str(tensors_path),
              metadata={"layers": ",".join(result.layers)})
    return [*written, tensors_path]
