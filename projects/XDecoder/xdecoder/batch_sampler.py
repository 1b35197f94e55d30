"""Batched evaluation that gives the batch-size-1 results: batches of same-size images only.

The model does not mask padding: in a batch of differently sized images each one is padded to
the largest, and the padding enters the convolutions, the attention and the mask logits, so the
predictions change. The evaluation configs therefore run one image at a time. Images with the
same *original* height and width go through the same deterministic test pipeline to the same
resized size and then to the same padded size (``pad_size_divisor``) whatever the batch, so a
batch made only of such images is padded exactly as each image alone: the per-image results are
those of batch size 1 up to floating-point summation order (tests/test_batch_sampler.py checks
this in float64). Grouping by the original size needs no knowledge of the pipeline's resize.

Use it for GPU throughput (on a 2-core CPU batching 4 images was measured 12 % slower)::

    python tools/test.py CONFIG CHECKPOINT --cfg-options test_dataloader.batch_size=8 \\
        test_dataloader.batch_sampler.type=SameSizeBatchSampler
"""
from typing import Dict, Iterator, List, Optional, Tuple

from mmdet.registry import DATA_SAMPLERS
from mmengine.dataset import DefaultSampler
from torch.utils.data import BatchSampler, Sampler, SequentialSampler


@DATA_SAMPLERS.register_module()
class SameSizeBatchSampler(BatchSampler):
    """Batches of up to ``batch_size`` indices whose images share one original (height, width).

    Wraps the loader's sampler as mmdet's ``AspectRatioBatchSampler`` does (the runner passes
    ``sampler`` and ``batch_size``): indices are put into one bucket per size in the sampler's
    order, and a bucket is yielded when full; partial buckets are yielded at the end, so every
    index the sampler gives is yielded exactly once (nothing is dropped at evaluation).

    Sizes come from the dataset's ``data_list`` (``'height'``/``'width'``, as COCO-style
    annotations give them) or, where it has none (mmseg-style ADE20K semantic), from the image
    file's header: PIL reads the size without decoding the pixels.

    Distributed evaluation. mmengine's ``DefaultSampler`` gives rank ``r`` of ``W`` the indices
    at positions ``r, r + W, ...`` of the dataset order, first repeating that order
    (``round_up=True``) so all ranks get ``ceil(N / W)``; ``collect_results`` then interleaves the
    ranks' result lists (result ``i`` of rank ``r`` goes to position ``i * W + r``) and keeps the
    first ``N``. Positions ``>= N`` are exactly the repeats, and on each rank they are a suffix of
    its index list; the kept results of rank ``r`` are its first ``k_r = len(range(r, N, W))``.
    Reordering within a rank would move a repeat in front of a real sample, and the cut would then
    keep the repeat and drop the real sample. So this sampler groups the first ``k_r`` indices
    (the real ones) among themselves and the repeats among themselves, yielding all real batches
    first: the rank's first ``k_r`` results are then its real samples (in another order), the cut
    keeps exactly the ``N`` dataset samples, each once, as at batch size 1. With
    ``round_up=False`` there are no repeats and ``k_r`` is the rank's count. Only the *order* of
    the collected results differs from batch size 1, which none of the evaluators used here
    depends on (mmseg/mmdet IoU sums, COCO metrics keyed by image id, the caption metric keyed by
    image id, retrieval ranks); a ``--out`` dump lists the same predictions in another order
    (each carries its ``img_path``). Any other sampler (whose repeats and rank slicing are not
    known) is refused with a ``TypeError`` rather than risk a wrong cut.

    Args:
        sampler (Sampler): mmengine's ``DefaultSampler`` or torch's ``SequentialSampler``.
        batch_size (int): The largest batch.
        drop_last (bool): Must be False: evaluation needs every sample.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False) -> None:
        if not isinstance(sampler, (DefaultSampler, SequentialSampler)):
            raise TypeError(
                'SameSizeBatchSampler keeps distributed evaluation exact only over mmengine\'s '
                "DefaultSampler (or torch's SequentialSampler), whose repeated samples it knows "
                f'to keep last; got {type(sampler).__name__}.')
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f'batch_size should be a positive integer, got {batch_size!r}')
        if drop_last:
            raise ValueError('SameSizeBatchSampler is for evaluation, which needs every sample: '
                             'drop_last must be False.')
        # BatchSampler.__init__ is not called: it only stores these three.
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = False
        self._sizes: Dict[int, Tuple[int, int]] = {}
        self._batches: Optional[List[List[int]]] = None
        self._batches_of: Optional[List[int]] = None

    @property
    def dataset(self):
        return self.sampler.dataset if isinstance(self.sampler, DefaultSampler) \
            else self.sampler.data_source

    def num_real(self, num_indices: int) -> int:
        """How many of this rank's first indices are dataset samples, not round-up repeats."""
        if isinstance(self.sampler, DefaultSampler) and self.sampler.round_up:
            return len(range(self.sampler.rank, len(self.dataset), self.sampler.world_size))
        return num_indices

    def image_size(self, idx: int) -> Tuple[int, int]:
        """Original (height, width) of sample ``idx``, read once."""
        if idx not in self._sizes:
            info = self.dataset.get_data_info(idx)
            if 'height' in info and 'width' in info:
                self._sizes[idx] = (int(info['height']), int(info['width']))
            else:
                from PIL import Image
                with Image.open(info['img_path']) as img:  # header only: no pixel decoding
                    width, height = img.size
                self._sizes[idx] = (height, width)
        return self._sizes[idx]

    def group(self, indices: List[int]) -> Iterator[List[int]]:
        """Same-size batches of ``indices``: full buckets as they fill, then the partial ones."""
        buckets: Dict[Tuple[int, int], List[int]] = {}
        for idx in indices:
            bucket = buckets.setdefault(self.image_size(idx), [])
            bucket.append(idx)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                bucket.clear()
        for bucket in buckets.values():
            if bucket:
                yield bucket

    def __iter__(self) -> Iterator[List[int]]:
        indices = list(self.sampler)
        real = self.num_real(len(indices))
        # Real samples first, repeats after: see the class docstring for why the cut needs it.
        batches = list(self.group(indices[:real])) + list(self.group(indices[real:]))
        self._batches_of, self._batches = indices, batches
        return iter(batches)

    def __len__(self) -> int:
        # The number of batches depends on the sizes; evaluation samplers do not reshuffle, so
        # the grouping is computed once (and again only if the sampler's order changed).
        indices = list(self.sampler)
        if self._batches is None or self._batches_of != indices:
            list(self.__iter__())
        return len(self._batches)


__all__ = ['SameSizeBatchSampler']
