"""Set metrics on feature matrices: blocked k-NN radii, rarity score, PRDC, realism, FID, KID and the
dataset-versus-dataset rarity comparison.

Every function takes ``np.ndarray`` or ``torch.Tensor`` features (samples x dims), ``device`` (cpu, cuda or
auto) and, for the distance-based metrics, ``block_size`` (tile edge: memory is O(block_size^2 +
block_size * dims), never N x M) and ``dtype`` (float32 default, float64 for reference results).
Definitions follow DESIGN.md section 4; each module documents its formula.
"""

from genaudit.metrics.compare import DatasetComparison, SetSummary, compare_datasets
from genaudit.metrics.distances import knn_distances, knn_radii
from genaudit.metrics.frechet import feature_stats, fid, fid_from_stats
from genaudit.metrics.kid import kid
from genaudit.metrics.prdc import PRDC, prdc
from genaudit.metrics.rarity import RarityResult, rarity
from genaudit.metrics.realism import realism

__all__ = [
    "PRDC",
    "DatasetComparison",
    "RarityResult",
    "SetSummary",
    "compare_datasets",
    "feature_stats",
    "fid",
    "fid_from_stats",
    "kid",
    "knn_distances",
    "knn_radii",
    "prdc",
    "rarity",
    "realism",
]
