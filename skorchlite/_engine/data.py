"""Training rows and their batches, for one model or a stack of models.

Both kinds yield batches in the stack's layout: ``X`` ``(M, B, n_features)``,
``y`` ``(M, B, ...)``, ``w`` ``(M, B)`` or None, and ``n_real``, the rows of
each model that are not padding (an int, or an ``(M,)`` tensor).
"""

from dataclasses import dataclass

import numpy as np
import torch


def dense_rows(X_sparse_rows, dtype, device):
    """A dense tensor on ``device`` from a few rows of a scipy sparse matrix."""
    dense = torch.from_numpy(X_sparse_rows.toarray())
    return dense.to(device=device, dtype=dtype, non_blocking=True)


def check_weight_sum(weights, names):
    """Raise a ValueError if the training weights do not sum to a positive number.

    The objective divides by ``sum(w)``; MLPClassifier accepts negative
    weights, and so do we while their sum stays positive.

    Parameters
    ----------
    weights : ndarray of shape (n_samples,) or None
    names : str
        What the weights are made of, for the message.

    Examples
    --------
    >>> import numpy as np
    >>> check_weight_sum(np.array([2.0, -1.0]), "sample_weight")
    >>> check_weight_sum(np.array([1.0, -1.0]), "sample_weight")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: sample_weight sums to 0.0 (1 of 2 weights are negative); ...
    """
    if weights is None:
        return
    total = float(np.sum(weights))
    if total > 0:
        return
    n_negative = int(np.count_nonzero(weights < 0))
    raise ValueError(
        f"{names} sums to {total!r} ({n_negative} of {len(weights)} weights are "
        "negative); the weights of the training rows must sum to a positive "
        "number, as the loss is their weighted mean sum(w * loss) / sum(w)."
    )


@dataclass(frozen=True)
class TrainingData:
    """One model's rows: a dense tensor on the device, or a scipy CSR matrix.

    Sparse rows are densified one batch at a time and moved to the device, so
    the dense matrix never exists as a whole.
    """

    X: object
    y: torch.Tensor
    sample_weight: torch.Tensor | None
    device: torch.device
    dtype: torch.dtype

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def is_sparse(self):
        return not isinstance(self.X, torch.Tensor)

    def _rows(self, rows):
        X = self.X[rows]
        return dense_rows(X, self.dtype, self.device) if self.is_sparse else X

    def batches(self, batch_size, permutation=None):
        """Yield ``(X, y, w, n_real, start)`` in the stack's layout (M = 1),
        in the order of ``permutation`` (a CPU LongTensor) if given."""
        X, y, w = self.X, self.y, self.sample_weight
        if permutation is not None:
            on_device = permutation.to(self.device, non_blocking=True)
            y = y[on_device]
            w = None if w is None else w[on_device]
            if not self.is_sparse:
                X = X[on_device]
        for start in range(0, self.n_samples, batch_size):
            stop = start + batch_size
            if self.is_sparse:
                rows = (
                    slice(start, stop)
                    if permutation is None
                    else permutation[start:stop].numpy()
                )
                X_batch = dense_rows(X[rows], self.dtype, self.device)
            else:
                X_batch = X[start:stop]
            yield (
                X_batch[None],
                y[start:stop][None],
                None if w is None else w[start:stop][None],
                X_batch.shape[0],
                start,
            )

    def full_batch(self):
        """All rows as one batch: ``(X, y, w)`` in the stack's layout."""
        X = dense_rows(self.X, self.dtype, self.device) if self.is_sparse else self.X
        w = self.sample_weight
        return X[None], self.y[None], None if w is None else w[None]


class OneModelData:
    """A :class:`TrainingData` as the rows of a stack of one."""

    def __init__(self, data, batch_size):
        self.data = data
        self.batch_size = batch_size
        self.n_samples = [data.n_samples]
        self.weighted = [data.sample_weight is not None]

    def epoch(self, permutations):
        """The batches of an epoch; ``permutations`` one per model, or None."""
        permutation = None if permutations is None else permutations[0]
        return self.data.batches(self.batch_size, permutation)

    def in_order(self, chunk):
        return self.data.batches(chunk)

    def keep(self, rows):
        raise ValueError("a stack of one keeps its rows")


def _pad_rows(tensor, n_rows):
    """``tensor`` with zero rows appended up to ``n_rows``."""
    padding = tensor.new_zeros((n_rows - tensor.shape[0], *tensor.shape[1:]))
    return torch.cat([tensor, padding])


def _stack_padded(tensors, n_rows):
    """Stack ``tensors``, each zero-padded to ``n_rows`` rows."""
    return torch.stack([_pad_rows(tensor, n_rows) for tensor in tensors])


def _stack_weights(weights, lengths, n_rows, like):
    """Stack row weights (ones where None), zero-padded to ``n_rows`` rows."""
    return _stack_padded(
        [
            torch.ones(n, dtype=like.dtype, device=like.device)
            if w is None
            else torch.as_tensor(w, dtype=like.dtype, device=like.device)
            for w, n in zip(weights, lengths, strict=True)
        ],
        n_rows,
    )


# The training rows of every model are gathered in epoch order this many
# numbers (64 MB of float64) at a time at most.
GATHER_MAX_NUMBERS = 2**23


class StackedData:
    """The rows of many models, zero-padded to the longest (weight 0).

    Models on the same rows (``keys``) share them: the distinct sets are
    stacked once. Training sets of different sizes (e.g. the folds of 1797
    rows) share a run when they give the same batches.

    Parameters
    ----------
    sets : list of TrainingData
        Each model's rows (dense).
    keys : list of hashable
        Models with the same key train on the same rows.
    batch_size : int
    """

    def __init__(self, sets, keys, batch_size):
        self.batch_size = batch_size
        self.n_samples = [data.n_samples for data in sets]
        self.n_rows = max(self.n_samples)
        distinct = {}
        for key, data in zip(keys, sets, strict=True):
            distinct.setdefault(key, data)
        order = list(distinct)
        like = sets[0].X
        self.X = _stack_padded([distinct[k].X for k in order], self.n_rows)
        self.y = _stack_padded([distinct[k].y for k in order], self.n_rows)
        index = {key: i for i, key in enumerate(order)}
        self.data_id = torch.tensor([index[key] for key in keys], device=like.device)
        self.weighted = [data.sample_weight is not None for data in sets]
        self.n_real = torch.tensor(self.n_samples, dtype=like.dtype, device=like.device)
        self.w = None
        if any(self.weighted) or min(self.n_samples) < self.n_rows:
            self.w = _stack_weights(
                [data.sample_weight for data in sets],
                self.n_samples,
                self.n_rows,
                like,
            )

    def pad_permutation(self, permutation):
        """A shuffle of a model's real rows, then its padded rows in order."""
        padding = torch.arange(permutation.shape[0], self.n_rows)
        return torch.cat([permutation, padding])

    def epoch(self, permutations):
        """The batches of an epoch, every model's rows in its own order."""
        M = self.data_id.shape[0]
        if permutations is None:
            rows_order = torch.arange(self.n_rows, device=self.X.device).expand(M, -1)
        else:
            rows_order = torch.stack(
                [self.pad_permutation(p) for p in permutations]
            ).to(self.X.device)
        return self._batches(rows_order, self.batch_size)

    def in_order(self, chunk):
        M = self.data_id.shape[0]
        rows_order = torch.arange(self.n_rows, device=self.X.device).expand(M, -1)
        return self._batches(rows_order, chunk)

    def _batches(self, rows_order, size):
        n = self.n_real
        M = rows_order.shape[0]
        # Each model's rows in this epoch's order are gathered a few batches at
        # a time (one gather per batch costs more; all at once, more memory).
        numbers_per_row = M * self.X.shape[2]
        chunk = max(1, GATHER_MAX_NUMBERS // (numbers_per_row * size)) * size
        # Rows of the data sets stacked end to end: one index_select gathers
        # every model's rows (2-3x faster than indexing two dimensions).
        X_rows = self.X.view(-1, self.X.shape[2])
        y_rows = self.y.view(-1, *self.y.shape[2:])
        offsets = (self.data_id * self.n_rows)[:, None]
        for first in range(0, self.n_rows, chunk):
            rows = rows_order[:, first : first + chunk]
            index = (offsets + rows).reshape(-1)
            X = X_rows.index_select(0, index).view(M, -1, X_rows.shape[1])
            y = y_rows.index_select(0, index).view(M, -1, *y_rows.shape[1:])
            w = None if self.w is None else self.w.gather(1, rows)
            for start in range(first, min(first + chunk, self.n_rows), size):
                batch = slice(start - first, start - first + size)
                n_real = min(size, self.n_rows - start)
                if start + n_real > min(self.n_samples):  # some models are padded
                    n_real = (n - start).clamp(min=0, max=n_real)
                yield (
                    X[:, batch],
                    y[:, batch],
                    None if w is None else w[:, batch],
                    n_real,
                    start,
                )

    def keep(self, rows):
        """Keep the models of ``rows`` (a list of ints)."""
        index = torch.tensor(rows, device=self.data_id.device)
        self.data_id = self.data_id[index]
        self.n_real = self.n_real[index]
        self.n_samples = [self.n_samples[r] for r in rows]
        self.weighted = [self.weighted[r] for r in rows]
        if self.w is not None:
            self.w = self.w[index]
