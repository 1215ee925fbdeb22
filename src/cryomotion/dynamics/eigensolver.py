"""The lowest eigenpairs of an elastic network Hessian, rigid-body modes detected and set apart.

Large networks use ARPACK's shift-invert Lanczos (``scipy.sparse.linalg.eigsh``) around a
small negative shift σ, with (H - σI)⁻¹ applied through a sparse factorisation in a
fill-reducing ordering: H - σI is positive definite, so the factorisation is stable, and
the near-zero rigid-body eigenvalues come out as the largest of (H - σI)⁻¹. Small networks
use a dense symmetric eigensolver.

Two factorisers of H - σI: SciPy's SuperLU (always there; LU in minimum-degree order), and
CHOLMOD's supernodal Cholesky (AMD order) from the optional ``cvxopt`` wheel (``pip install
"cryomotion[nma-fast]"``), which factors the 13,910-node grid network of
benchmarks/nma_scaling.py 2–4× faster and halves the time of its modes. ``"auto"`` takes
CHOLMOD when cvxopt imports and the network has at least ``CHOLMOD_MIN_DOF`` degrees of
freedom; the keyword ``factoriser`` or the environment variable ``CRYOMOTION_FACTORISER``
forces one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from cryomotion.errors import InputError

try:  # installed with scikit-learn
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

log = logging.getLogger(__name__)

#: Networks with at most this many degrees of freedom are diagonalised densely (shift-invert
#: Lanczos is as fast above, and needs no dense matrix).
DENSE_MAX_DOF = 300
#: Eigenvalues below this fraction of the largest diagonal element of H count as zero.
ZERO_TOLERANCE = 1e-10
#: Rigid-body modes of a connected network in 3D: 3 translations, 3 rotations.
RIGID_BODY_MODES = 6
#: Largest accepted residual |Hv - λv| of an eigenpair, as a fraction of max|H_ii|.
RESIDUAL_TOLERANCE = 1e-8
#: Factorisers of the shifted Hessian: "auto", "superlu" (SciPy) or "cholmod" (cvxopt).
FACTORISERS = ("auto", "superlu", "cholmod")
#: Environment variable forcing a factoriser when the ``factoriser`` keyword is not given.
FACTORISER_ENV = "CRYOMOTION_FACTORISER"
#: "auto" takes CHOLMOD from this many degrees of freedom on. Measured (CPU s, factor plus
#: ARPACK's solves, one thread, load 2.5–2.8 on 2 cores): 1,284 dof 0.021–0.023 against
#: SuperLU's 0.029–0.031, 5,778 dof 0.10–0.12 against 0.19–0.28, 41,730 dof 4.1 against 7.2;
#: at 642 dof (AdK, 214 Cα) the two are within noise (12 ms against 13 ms).
CHOLMOD_MIN_DOF = 1000
#: The extra that installs cvxopt.
CHOLMOD_EXTRA = "cryomotion[nma-fast]"

#: Factoriser choices already logged (each is logged once a process).
_announced: set[str] = set()


class Spectrum(NamedTuple):
    """Lowest eigenpairs of a Hessian.

    eigenvalues : (modes,) ascending, the non-trivial ones.
    vectors : (modes, dof) orthonormal eigenvectors; the sign of each is fixed so that its
        largest-magnitude component is positive.
    rigid_eigenvalues : (zeros,) the numerically zero eigenvalues set apart (6 for a
        connected network: translations and rotations).
    rigid_vectors : (zeros, dof) their eigenvectors.
    """

    eigenvalues: np.ndarray
    vectors: np.ndarray
    rigid_eigenvalues: np.ndarray
    rigid_vectors: np.ndarray


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """(modes, dof): each row's largest-magnitude component made positive."""
    if vectors.size == 0:
        return vectors
    peak = vectors[np.arange(len(vectors)), np.argmax(np.abs(vectors), axis=1)]
    return vectors * np.where(peak < 0, -1.0, 1.0)[:, None]


def lowest_eigenpairs(
    hessian: sp.spmatrix | np.ndarray,
    count: int,
    method: str = "auto",
    factoriser: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` lowest eigenpairs of a symmetric positive semi-definite matrix.

    Parameters
    ----------
    hessian : (dof, dof) sparse or dense.
    count : number of eigenpairs, zeros included.
    method : "dense", "sparse" (shift-invert Lanczos) or "auto" (dense up to
        ``DENSE_MAX_DOF`` degrees of freedom, or when ``count`` is close to ``dof``).
    factoriser : of H - σI in the sparse method: "superlu", "cholmod" (needs cvxopt) or
        "auto"; None takes ``$CRYOMOTION_FACTORISER``, or "auto" when it is not set.

    Returns
    -------
    eigenvalues (count,) ascending and vectors (count, dof).
    """
    dof = hessian.shape[0]
    count = min(int(count), dof)
    if method not in ("auto", "dense", "sparse"):
        raise ValueError(f"method {method!r}, expected 'auto', 'dense' or 'sparse'")
    factoriser = _requested_factoriser(factoriser)
    if method == "auto":
        method = "dense" if dof <= DENSE_MAX_DOF else "sparse"
    if method == "sparse" and count >= dof - 1:
        method = "dense"
    if count == 0:
        return np.zeros(0), np.zeros((0, dof))
    if method == "dense":
        matrix = hessian.toarray() if sp.issparse(hessian) else np.asarray(hessian)
        values, vectors = scipy.linalg.eigh(matrix, subset_by_index=(0, count - 1))
        return values, vectors.T

    with _one_blas_thread():
        return _shift_invert_lanczos(sp.csc_matrix(hessian), count, factoriser)


def _requested_factoriser(factoriser: str | None) -> str:
    """The keyword, else ``$CRYOMOTION_FACTORISER``, else "auto"; checked."""
    field = "factoriser"
    if factoriser is None:
        factoriser = os.environ.get(FACTORISER_ENV, "").strip().lower() or "auto"
        field = f"environment variable {FACTORISER_ENV}"
    if factoriser not in FACTORISERS:
        raise InputError(f"{field} {factoriser!r}: expected 'auto', 'superlu' or 'cholmod'")
    return factoriser


def _cvxopt_available() -> bool:
    """Whether cvxopt (with its CHOLMOD) imports."""
    try:
        import cvxopt.cholmod  # noqa: F401
    except ImportError:
        return False
    return True


def _announce(message: str, *args) -> None:
    """Log the factoriser choice at INFO, once a process for each distinct message."""
    text = message % args
    if text not in _announced:
        _announced.add(text)
        log.info(text)


def _choose_factoriser(requested: str, dof: int, sigma: float) -> str:
    """The factoriser, "superlu" or "cholmod", of H - σI of ``dof`` degrees of freedom.

    The choice and its reason are logged at INFO, once a process.
    """
    if requested == "cholmod" and not _cvxopt_available():
        raise InputError(
            f"factoriser 'cholmod' needs cvxopt, which does not import: "
            f"pip install \"{CHOLMOD_EXTRA}\" (or choose 'superlu')"
        )
    if not sigma < 0:  # H - σI not positive definite: Cholesky does not apply
        _announce("sparse factoriser: SuperLU (shift σ = %g is not negative)", sigma)
        return "superlu"
    if requested != "auto":
        _announce("sparse factoriser: %s (asked for)", requested)
        return requested
    if dof < CHOLMOD_MIN_DOF:
        _announce(
            "sparse factoriser: SuperLU (auto: networks below %d degrees of freedom)",
            CHOLMOD_MIN_DOF,
        )
        return "superlu"
    if not _cvxopt_available():
        _announce(
            'sparse factoriser: SuperLU (auto: cvxopt does not import; pip install "%s" '
            "computes the modes of large networks up to twice as fast with CHOLMOD)",
            CHOLMOD_EXTRA,
        )
        return "superlu"
    _announce(
        "sparse factoriser: CHOLMOD from cvxopt (auto: cvxopt imports, networks of %d degrees "
        "of freedom or more)",
        CHOLMOD_MIN_DOF,
    )
    return "cholmod"


def _superlu_solver(shifted: sp.csc_matrix) -> Callable[[np.ndarray], np.ndarray]:
    """Solve of H - σI by SuperLU in its symmetric mode, minimum-degree ordering on A + Aᵀ.

    H - σI is symmetric positive definite, so SuperLU runs without row pivoting and keeps
    the fill of the ordering.
    """
    factor = spla.splu(
        shifted,
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    return factor.solve


def _cholmod_solver(shifted: sp.csc_matrix) -> Callable[[np.ndarray], np.ndarray]:
    """Solve of H - σI by CHOLMOD's supernodal Cholesky LLᵀ (AMD ordering) from cvxopt.

    CHOLMOD reads the lower triangle. cvxopt keeps one CHOLMOD workspace for the process
    and holds the GIL while it factors (measured: a second Python thread stalls for the
    0.7 s of the 13,910-node grid's factor, where SuperLU lets it run): do not call it from
    several threads at once. Raises ArithmeticError when the matrix is not positive
    definite.
    """
    from cvxopt import cholmod, matrix, spmatrix

    dof = shifted.shape[0]
    lower = sp.tril(shifted, format="coo")
    pattern = spmatrix(
        np.asarray(lower.data, dtype=np.float64),
        lower.row.astype(np.int64),
        lower.col.astype(np.int64),
        (dof, dof),
        "d",
    )
    saved = dict(cholmod.options)
    cholmod.options.update({"supernodal": 2, "postorder": True})
    try:
        factor = cholmod.symbolic(pattern)
        cholmod.numeric(pattern, factor)
    finally:
        cholmod.options.clear()
        cholmod.options.update(saved)

    def solve(rhs: np.ndarray) -> np.ndarray:
        solution = matrix(np.asarray(rhs, dtype=np.float64).reshape(dof, 1))
        cholmod.solve(factor, solution)
        return np.array(solution).reshape(np.shape(rhs))

    return solve


def _one_blas_thread():
    """Context running BLAS on one thread.

    The sparse triangular solves and ARPACK's Lanczos steps call BLAS on small blocks,
    where extra threads only add synchronisation: with two threads on a busy two-core
    machine the shift-invert phase ran twice as slow as with one.
    """
    if threadpool_limits is None:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _shift_invert_lanczos(
    hessian: sp.csc_matrix, count: int, factoriser: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Shift-invert Lanczos around σ = -10⁻⁶ max|H_ii| with a sparse factor of H - σI.

    H - σI is symmetric positive definite; it is factored by SuperLU or CHOLMOD
    (``factoriser``, see ``_choose_factoriser``). ARPACK stops at a relative tolerance of
    10⁻⁸ on (H - σI)⁻¹; the residuals |Hv - λv| are then checked, and the run repeated at
    machine precision if one is too large.
    """
    dof = hessian.shape[0]
    scale = float(np.abs(hessian.diagonal()).max())
    sigma = -1e-6 * scale
    shifted = (hessian - sigma * sp.identity(dof, format="csc")).tocsc()
    solve = None
    if _choose_factoriser(factoriser, dof, sigma) == "cholmod":
        try:
            solve = _cholmod_solver(shifted)
        except ArithmeticError as error:  # not positive definite after all
            log.warning("CHOLMOD failed (%s); factoring with SuperLU instead", error)
    if solve is None:
        solve = _superlu_solver(shifted)
    inverse = spla.LinearOperator((dof, dof), matvec=solve, dtype=np.float64)
    start = np.random.default_rng(0).standard_normal(dof)
    for tol in (1e-8, 0.0):
        values, vectors = spla.eigsh(
            hessian, k=count, sigma=sigma, which="LM", OPinv=inverse, v0=start, tol=tol
        )
        residuals = np.linalg.norm(hessian @ vectors - vectors * values, axis=0)
        if residuals.max() <= RESIDUAL_TOLERANCE * scale:
            break
    order = np.argsort(values)
    return values[order], vectors[:, order].T


def nontrivial_modes(
    hessian: sp.spmatrix | np.ndarray,
    n_modes: int,
    method: str = "auto",
    zero_tolerance: float = ZERO_TOLERANCE,
    factoriser: str | None = None,
) -> Spectrum:
    """The ``n_modes`` lowest non-zero eigenpairs of an elastic network Hessian.

    Zero eigenvalues (|λ| ≤ ``zero_tolerance`` × the largest diagonal element) are
    detected numerically and set apart; a connected network in 3D has six (rigid-body
    translations and rotations). More zeros mean floppy internal motions (a node with
    fewer than three springs): they are set apart too, with a warning. ``method`` and
    ``factoriser`` are those of ``lowest_eigenpairs``.
    """
    dof = hessian.shape[0]
    if n_modes < 0:
        raise ValueError(f"n_modes {n_modes}, expected a non-negative number")
    diagonal = hessian.diagonal()
    threshold = zero_tolerance * float(np.abs(diagonal).max()) if dof else 0.0
    count = n_modes + RIGID_BODY_MODES
    while True:
        values, vectors = lowest_eigenpairs(hessian, count, method, factoriser)
        zero = np.abs(values) <= threshold
        n_zeros = int(zero.sum())
        if count - n_zeros >= n_modes or count >= dof:
            break
        count = min(dof, n_modes + n_zeros + 1)
    if n_zeros != RIGID_BODY_MODES:
        log.warning(
            "%d zero eigenvalues found, expected %d rigid-body modes; all are set apart",
            n_zeros,
            RIGID_BODY_MODES,
        )
    if len(values) and values[0] < -threshold:
        raise RuntimeError(f"negative eigenvalue {values[0]:g}: the Hessian is not semi-definite")
    kept = np.nonzero(~zero)[0][:n_modes]
    if len(kept) < n_modes:
        log.warning("only %d non-trivial modes exist (asked for %d)", len(kept), n_modes)
    return Spectrum(
        eigenvalues=values[kept],
        vectors=_fix_signs(vectors[kept]),
        rigid_eigenvalues=values[zero],
        rigid_vectors=vectors[zero],
    )
