"""Joint training: a segmentation batch and an image-text batch in every iteration.

The official trainer zips two data loaders (its ``JointLoader``: COCO panoptic with captions and
referring expressions at 1 image per GPU, image-text pairs at 32 per GPU; an epoch is the
segmentation stream's). Here the same is built from mmengine parts:

* ``train_dataloader = dict(segmentation=<dataloader cfg>, image_text=<dataloader cfg>)``: one
  ordinary mmengine dataloader config per stream, each with its own batch size, pipeline and
  ``InfiniteSampler``;
* :class:`JointTrainLoop` (``train_cfg = dict(type='JointTrainLoop', max_iters=...)``), mmengine's
  ``IterBasedTrainLoop`` over :class:`ZippedDataLoader`, which yields
  ``{'segmentation': batch, 'image_text': batch}``. ``--resume`` replays the iterations already
  done, as ``IterBasedTrainLoop`` does, which puts both seeded streams back where they were;
* :class:`JointDataPreprocessor` (``model.data_preprocessor``) normalises and pads each stream
  as ``DetDataPreprocessor`` does and hands the model ``{stream: inputs}``; ``XDecoder.loss``
  sums the streams' losses, so one backward pass (one DDP all-reduce) covers both.
"""
from typing import Dict, Iterator, Union

from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from mmengine.registry import LOOPS
from mmengine.runner import IterBasedTrainLoop
from torch.utils.data import DataLoader

STREAMS = ('segmentation', 'image_text')


class ZippedDataLoader:
    """Named data loaders iterated in lock step: yields ``{name: batch}``.

    ``dataset`` and ``len()`` are the first loader's (the epoch is the segmentation stream's).
    The iteration stops when any loader does; with ``InfiniteSampler`` none does.
    """

    def __init__(self, loaders: Dict[str, DataLoader]):
        if not loaders:
            raise ValueError('ZippedDataLoader needs at least one data loader.')
        self.loaders = loaders
        self.dataset = next(iter(loaders.values())).dataset

    def __len__(self) -> int:
        return len(next(iter(self.loaders.values())))

    def __iter__(self) -> Iterator[dict]:
        iterators = {name: iter(loader) for name, loader in self.loaders.items()}
        while True:
            try:
                yield {name: next(it) for name, it in iterators.items()}
            except StopIteration:
                return


@LOOPS.register_module()
class JointTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` over several named data streams.

    Args:
        dataloader: ``{stream name: dataloader config or DataLoader}`` (the config's
            ``train_dataloader``); the names are :data:`STREAMS`.
        max_iters, val_begin, val_interval, dynamic_intervals: as ``IterBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader: Dict[str, Union[DataLoader, dict]], max_iters: int,
                 **kwargs):
        unknown = sorted(set(dataloader) - set(STREAMS))
        if unknown or not dataloader:
            raise ValueError(
                f'JointTrainLoop needs train_dataloader = dict(segmentation=..., '
                f'image_text=...) (one dataloader config per stream); got keys '
                f'{sorted(dataloader)}.')
        # Each stream gets the runner's seed handling (seeded workers, rank-dependent seeds).
        loaders = {
            name: cfg if isinstance(cfg, DataLoader) else runner.build_dataloader(
                cfg, seed=runner.seed, diff_rank_seed=runner._randomness_cfg.get(
                    'diff_rank_seed', False))
            for name, cfg in dataloader.items()
        }
        super().__init__(runner, ZippedDataLoader(loaders), max_iters, **kwargs)


@MODELS.register_module()
class JointDataPreprocessor(DetDataPreprocessor):
    """``DetDataPreprocessor`` that also takes ``{stream: batch}`` (joint training) and returns
    ``{'inputs': {stream: [B_s, 3, H_s, W_s]}, 'data_samples': {stream: samples}}``; a plain
    batch (evaluation, single-stream training) is processed as ``DetDataPreprocessor`` does."""

    def forward(self, data: dict, training: bool = False) -> dict:
        if 'inputs' in data:
            return super().forward(data, training)
        streams = {name: super(JointDataPreprocessor, self).forward(batch, training)
                   for name, batch in data.items()}
        return dict(inputs={name: s['inputs'] for name, s in streams.items()},
                    data_samples={name: s['data_samples'] for name, s in streams.items()})
