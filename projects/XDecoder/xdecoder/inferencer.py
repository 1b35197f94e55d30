"""One inferencer for every X-Decoder task, in the shape of mmdet's ``DetInferencer``.

    >>> from projects.XDecoder.xdecoder import XDecoderInferencer
    >>> inferencer = XDecoderInferencer('xdecoder-tiny_zeroshot_semseg.py',
    ...                                 weights='xdecoder_focalt_best_openseg.pt')
    >>> result = inferencer('photo.jpg', texts='sky.tree.building', out_dir='outputs')
    >>> result['predictions'][0]['sem_seg']        # uint8 [H, W], index into the vocabulary

Inputs: an image path, a folder (its image files, sorted by name), a numpy array (BGR, mmcv's
convention; ``rgb=True`` for RGB arrays such as ``skimage.data`` or ``np.asarray(PIL image)``),
a ``PIL.Image`` (its own mode decides), or a list of these. Grayscale, RGBA and palette images
become 3-channel RGB.

Test-time resize: the config's test pipeline, with the task's resize (``tasks.TASKS``) swapped
in; predictions always come back at the size of the image given. ``scale=N`` replaces the short
side of every pass of the call (long side then uncapped; PIL bicubic for the segmentation tasks,
as the official demos). Images above ``max_pixels`` are first shrunk (with a warning): the mask
logits are resized back to the image size, ``num_queries x H x W`` floats (101 x 4 bytes per
pixel, before copies).

Saved files (``out_dir``), one folder per image, named after the file (or ``image_<i>`` for
arrays; ``_<i>`` appended when two inputs share a name), laid out as ``results.py`` says. An
existing folder is never written into: the call refuses before running the model
(``FileExistsError``).
"""
import collections
import copy
import json
import os
import os.path as osp
import textwrap
import time
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import Compose
from mmdet.registry import DATASETS, TRANSFORMS, VISUALIZERS
from mmdet.structures import DetDataSample
from mmdet.visualization import get_palette
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.fileio import get as read_bytes
from mmengine.infer import BaseInferencer
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from . import postprocess
from .checkpoint import CHECKPOINT_HELP, check_checkpoint_file
from .results import save, to_result
from .tasks import FALLBACK_RESIZE, TaskSpec, Texts, get_task, texts_to_metainfo

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
META_KEYS = ('name', 'source', 'ori_shape', 'img_shape', 'scale_factor', 'task', 'text',
             'stuff_text')

InputType = Union[str, np.ndarray, 'PIL.Image.Image']  # noqa: F821


def resolve_config(config: Union[str, Config, dict]) -> Config:
    """A config object from a path, or from a file name in ``projects/XDecoder/configs``."""
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if isinstance(config, dict):
        return Config(copy.deepcopy(dict(config)))
    for path in (config, osp.join(CONFIG_DIR, config), osp.join(CONFIG_DIR, config + '.py')):
        if osp.isfile(path):
            return Config.fromfile(path)
    raise FileNotFoundError(f'Config not found: {config!r} is neither a file nor a config name '
                            f'in {CONFIG_DIR}.')


def array_to_bgr(array: np.ndarray, rgb: bool) -> np.ndarray:
    """A uint8 image array ([H, W], [H, W, 1], [H, W, 3] or [H, W, 4]) as BGR [H, W, 3]."""
    if array.dtype != np.uint8:
        raise ValueError(f'Image arrays must be uint8 (0..255), got {array.dtype}; convert '
                         'with (x * 255).clip(0, 255).astype(np.uint8) for 0..1 floats.')
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f'Image arrays must be [H, W], [H, W, 3] or [H, W, 4], got '
                         f'{array.shape}.')
    array = array[..., :3]  # alpha dropped
    return array[..., ::-1] if rgb else array


def list_inputs(inputs) -> List[dict]:
    """Descriptors ``{name, source, input}`` of the inputs (``preprocess`` reads the images)."""
    if isinstance(inputs, str) and osp.isdir(inputs):
        files = sorted(f for f in os.listdir(inputs) if f.lower().endswith(IMG_EXTENSIONS))
        if not files:
            raise ValueError(f'No image files ({", ".join(IMG_EXTENSIONS)}) in {inputs}.')
        inputs = [osp.join(inputs, f) for f in files]
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    if not inputs:
        raise ValueError('No inputs given.')
    items = []
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            if not osp.isfile(item) and '://' not in item:
                raise FileNotFoundError(f'Image not found: {item}')
            name = osp.splitext(osp.basename(item))[0]
            items.append(dict(name=name, source=item, input=item))
        else:
            items.append(dict(name=f'image_{i}', source=None, input=item))
    counts = collections.Counter(item['name'] for item in items)
    for i, item in enumerate(items):  # unique folder names
        if counts[item['name']] > 1:
            item['name'] = f'{item["name"]}_{i}'
    return items


def read_image(item: dict, rgb: bool, max_pixels: int) -> np.ndarray:
    """An input descriptor's image as a BGR uint8 ``[H, W, 3]`` array, shrunk to
    ``max_pixels`` if needed."""
    data = item['input']
    if isinstance(data, str):
        try:
            # PIL decoding, as the configs' LoadImageFromFile: applies EXIF orientation and
            # makes grayscale / palette / RGBA images 3-channel.
            img = mmcv.imfrombytes(read_bytes(data), flag='color', channel_order='bgr',
                                   backend='pillow')
        except Exception as e:  # PIL raises many types for unreadable files
            raise ValueError(f'Cannot decode image {data}: {e}') from e
    elif isinstance(data, np.ndarray):
        img = array_to_bgr(data, rgb)
    elif type(data).__module__.startswith('PIL.'):
        from PIL import ImageOps
        img = np.asarray(ImageOps.exif_transpose(data).convert('RGB'))[..., ::-1]
    else:
        raise TypeError(f'Unsupported input {type(data).__name__}: give a path, a folder, '
                        'a numpy array or a PIL image.')
    h, w = img.shape[:2]
    if h * w > max_pixels:
        factor = (max_pixels / (h * w))**0.5
        size = (max(int(w * factor), 1), max(int(h * factor), 1))
        warnings.warn(f'{item["name"]} is {w}x{h}; shrinking it to {size[0]}x{size[1]} '
                      f'(max_pixels={max_pixels}) so that the full-size mask logits fit in '
                      'memory; predictions are at the shrunk size.')
        img = mmcv.imresize(img, size, interpolation='area')
    return np.ascontiguousarray(img)


def check_out_dir(out_dir: str, items: List[dict], task: TaskSpec) -> None:
    """``FileExistsError`` if any output path of the call exists: nothing is overwritten."""
    targets = [osp.join(out_dir, item['name']) for item in items]
    if 'retrieval' in task.results:
        targets.append(osp.join(out_dir, 'retrieval.json'))
    taken = [t for t in targets if osp.exists(t)]
    if taken:
        raise FileExistsError(
            f'{taken[0]} already exists ({len(taken)} of the {len(targets)} output paths do); '
            'the inferencer does not overwrite results: choose another out_dir or remove them.')


def draw_title(visualizer, image: np.ndarray, title: str) -> np.ndarray:
    """``image`` with ``title`` written white on black in its top left corner."""
    h, w = image.shape[:2]
    size = max(8, min(h, w) // 30)
    lines = [line for part in title.splitlines()
             for line in textwrap.wrap(part, max(10, int(w / (0.6 * size))))]
    visualizer.set_image(image)
    visualizer.draw_texts('\n'.join(lines), np.array([size // 2, size // 2]), colors='white',
                          font_sizes=size, vertical_alignments='top',
                          bboxes=[dict(facecolor='black', alpha=0.7, pad=0.5, edgecolor='none')])
    return visualizer.get_image()


class Unit(NamedTuple):
    """What ``preprocess`` yields and ``forward`` runs: collated batches and, for retrieval,
    ``ground(i)``, which packs image ``i`` for its grounding pass (at the referring scale)."""
    batches: List[dict]
    ground: Optional[Callable[[int], dict]] = None


class XDecoderInferencer(BaseInferencer):
    """Open-vocabulary segmentation, referring segmentation, captioning and retrieval.

    Args:
        model: a config path, a config name in ``projects/XDecoder/configs`` or a config.
        weights: a released checkpoint (see README "Checkpoints"); ``None`` leaves the weights
            random (with a warning): only good for smoke tests.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``...; ``None`` = CUDA when available.
        test_cfg: overrides of the detector's ``test_cfg`` (e.g. ``caption_steps``,
            ``semantic_score_thr``, ``object_mask_thr``).
        max_pixels: larger images are shrunk to this many pixels before anything else.
        precision: ``'fp32'`` (default), ``'bf16'`` (CPU or GPU) or ``'fp16'`` (GPU): the
            network under autocast; masks, scores and post-processing stay fp32.

    Call: ``inferencer(inputs, texts=None, task=None, ...)``, see :meth:`__call__`. Each
    prediction is a dict with ``name``, ``source`` (path or None), ``task``, ``shape`` (H, W)
    and the parts of its task (``results.py``), plus ``out_dir`` when saved.
    """

    preprocess_kwargs: set = {'task', 'metainfo', 'rgb', 'scale'}
    forward_kwargs: set = set()
    visualize_kwargs: set = {'show', 'pred_score_thr', 'draw'}
    postprocess_kwargs: set = {'out_dir', 'return_vis', 'no_save_vis'}

    def __init__(self,
                 model: Union[str, Config, dict] = 'xdecoder-tiny_zeroshot_semseg.py',
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 test_cfg: Optional[dict] = None,
                 max_pixels: int = 8 * 2**20,
                 precision: Optional[str] = None) -> None:
        cfg = resolve_config(model)
        if weights is not None:
            check_checkpoint_file(weights, cfg.model.get('backbone', {}).get('embed_dim'))
        test_cfg = {**(test_cfg or {}), **({'precision': precision} if precision else {})}
        if test_cfg:
            cfg.model.test_cfg = {**cfg.model.get('test_cfg', {}), **test_cfg}
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        init_default_scope('mmdet')
        self.max_pixels = max_pixels
        self.default_task = get_task(cfg.model.get('task', 'semantic')).name
        self._pipelines: Dict[tuple, Compose] = {}
        super().__init__(model=cfg, weights=weights, device=device, scope='mmdet',
                         show_progress=False)

    # ------------------------------------------------------------------ set-up
    def _load_weights_to_model(self, model, checkpoint, cfg) -> None:
        if checkpoint is None:
            warnings.warn('XDecoderInferencer: no weights given, the model is randomly '
                          'initialised and its predictions are meaningless. ' + CHECKPOINT_HELP)
            return
        super()._load_weights_to_model(model, checkpoint, cfg)

    def _init_pipeline(self, cfg: Config) -> Compose:
        dataset = cfg.get('test_dataloader', {}).get('dataset', {})
        while 'dataset' in dataset:  # wrappers (RepeatDataset, ...)
            dataset = dataset['dataset']
        self._dataset_cfg = dataset
        # What the config does to an image between loading and packing (its resizes).
        self._image_transforms = [
            copy.deepcopy(dict(t)) for t in dataset.get('pipeline', [])
            if not t['type'].startswith('Load') and t['type'] != 'PackDetInputs']
        return self._pipeline(get_task(self.default_task), None)

    def _init_collate(self, cfg: Config):
        return pseudo_collate

    def _init_visualizer(self, cfg: Config):
        vis_cfg = copy.deepcopy(cfg.get('visualizer', dict(type='DetLocalVisualizer')))
        # No storage backends: the inferencer writes vis.jpg itself, into the image's folder.
        vis_cfg.pop('vis_backends', None)
        vis_cfg['name'] = f'xdecoder_inferencer_{id(self)}_{time.time_ns()}'
        return VISUALIZERS.build(vis_cfg)

    def _pipeline(self, task: TaskSpec, scale: Optional[int]) -> Compose:
        """The config's test pipeline from an array, with the task's resize (or ``scale``)."""
        key = (task.name, scale)
        if key not in self._pipelines:
            transforms = self._image_transforms
            swap = task.resize is not None or scale is not None
            if swap or not any('Resize' in t['type'] for t in transforms):
                resize = dict(type='ResizeShortestEdge', backend='pillow',
                              **(task.resize or FALLBACK_RESIZE))
                if scale is not None:
                    resize.update(scale=int(scale), max_size=None)
                transforms = [resize] + [t for t in transforms if 'Resize' not in t['type']]
            transforms = [dict(type='LoadImageFromNDArray'), *transforms,
                          dict(type='PackDetInputs', meta_keys=META_KEYS)]
            self._pipelines[key] = Compose([TRANSFORMS.build(t) for t in transforms])
        return self._pipelines[key]

    # ------------------------------------------------------------------ vocabulary
    def dataset_classes(self) -> Dict[str, List[str]]:
        """Class names of the config's test dataset: ``classes`` and, for panoptic datasets,
        ``thing_classes`` / ``stuff_classes``."""
        if not self._dataset_cfg:
            return {}
        meta = dict(DATASETS.get(self._dataset_cfg['type']).METAINFO)
        meta.update(self._dataset_cfg.get('metainfo', {}))
        return {k: list(v) for k, v in meta.items() if k.endswith('classes')}

    @torch.no_grad()
    def text_embeddings(self, task: str, texts: Texts = None,
                        stuff_texts: Texts = None) -> torch.Tensor:
        """What the model compares queries with: class embeddings ``[K+1, D]`` (background
        last) for a vocabulary, phrase EOT embeddings ``[N, D]`` otherwise."""
        spec = get_task(task)
        meta = texts_to_metainfo(spec, texts, stuff_texts, self.dataset_classes())
        if 'text' not in meta:
            raise ValueError(f'Task {task!r} takes no texts.')
        encoder = self.model.text_encoder
        if spec.texts == 'classes':
            return encoder.class_embeddings(meta['text'] + meta.get('stuff_text', []))
        return encoder.encode(meta['text'])['eot_feats']

    # ------------------------------------------------------------------ steps
    def _inputs_to_list(self, inputs) -> List[dict]:
        return list_inputs(inputs)

    def __call__(self,
                 inputs: Union[InputType, Sequence[InputType]],
                 texts: Texts = None,
                 task: Optional[str] = None,
                 batch_size: int = 1,
                 out_dir: str = '',
                 show: bool = False,
                 stuff_texts: Texts = None,
                 rgb: bool = False,
                 scale: Optional[int] = None,
                 pred_score_thr: float = 0.3,
                 return_vis: bool = False,
                 no_save_vis: bool = False,
                 return_datasamples: bool = False) -> dict:
        """Run one task on one or more images.

        Args:
            inputs: path, folder, BGR array (or RGB with ``rgb=True``), PIL image, or a list.
            texts: class names (semantic / instance / panoptic things), phrases (referring,
                retrieval), one phrase (ref-caption); a list or ``"a.b.c"``. ``None`` takes the
                config dataset's classes (segmentation tasks).
            task: one of ``tasks.TASKS``; ``None`` = the config's ``model.task``.
            batch_size: images per forward. Padding is not masked in the model, so images of
                different sizes give (slightly) different results in a batch than alone.
            out_dir: if given, save the predictions there (see ``results.py``).
            show: display the drawings in a window.
            stuff_texts: stuff names for panoptic (labels follow ``texts``); for instance
                they compete for the queries and are then dropped (the official evaluation;
                ``test_cfg.instance_thing_only``).
            rgb: numpy inputs are RGB instead of BGR.
            scale: short side for this call instead of the task's default (see module doc).
            pred_score_thr: instances below it are not drawn.
            return_vis: return the drawings (RGB arrays) as ``visualization``.
            no_save_vis: do not draw ``vis.jpg`` into ``out_dir`` (drawing takes seconds).
            return_datasamples: return the detector's ``DetDataSample`` s instead of dicts.

        Returns:
            ``dict(predictions=[one per image, input order], visualization=[RGB] or None)``,
            plus ``retrieval = {text: [probability per image]}`` for retrieval.
        """
        spec = get_task(task or self.default_task)
        metainfo = texts_to_metainfo(spec, texts, stuff_texts, self.dataset_classes())
        if out_dir:
            check_out_dir(out_dir, list_inputs(inputs), spec)
        draw = (bool(out_dir) and not no_save_vis) or show or return_vis
        return super().__call__(inputs, return_datasamples, batch_size, task=spec.name,
                                metainfo=metainfo, rgb=rgb, scale=scale, show=show,
                                pred_score_thr=pred_score_thr, draw=draw, out_dir=out_dir,
                                return_vis=return_vis, no_save_vis=no_save_vis)

    def preprocess(self, inputs: List[dict], batch_size: int = 1, task: str = 'semantic',
                   metainfo: Optional[dict] = None, rgb: bool = False,
                   scale: Optional[int] = None):
        """Reads each image once (into its descriptor's ``img``, where ``visualize`` finds it)
        and yields :class:`Unit` s of collated batches ``dict(inputs=[[3, h, w] uint8 BGR],
        data_samples=[...])``. Retrieval compares the images with each other: all its batches
        form one unit."""
        spec = get_task(task)
        pipeline = self._pipeline(spec, scale)

        def pack(item, transforms, **meta):
            return transforms(dict(img=item['img'], name=item['name'], source=item['source'],
                                   **copy.deepcopy(meta)))

        batches = []
        for chunk in self._get_chunk_data(inputs, batch_size):
            for item in chunk:
                item['img'] = read_image(item, rgb, self.max_pixels)
            batches.append(self.collate_fn(
                [pack(item, pipeline, task=spec.name, **(metainfo or {})) for item in chunk]))
            if 'retrieval' not in spec.results:
                yield Unit([batches.pop()])
        if batches:
            referring = get_task('referring')
            grounding = self._pipeline(referring, scale)
            yield Unit(batches, lambda i: pack(inputs[i], grounding, task=referring.name))

    @torch.no_grad()
    def forward(self, unit: Unit) -> List[DetDataSample]:
        samples = [s.cpu() for batch in unit.batches for s in self.model.test_step(batch)]
        if unit.ground is not None:
            self._retrieve(samples, unit.ground)
        return samples

    def _retrieve(self, samples: List[DetDataSample], ground: Callable[[int], dict]) -> None:
        """Softmax over images of ``min(exp(logit_scale), 100) * cos(global query, text EOT)``
        (each sample's ``retrieval_probs [T]``); then each text is grounded on its best image
        (official demo), whose ``pred_instances`` are labelled with the texts' indices."""
        texts = samples[0].metainfo['text']
        encoder = self.model.text_encoder
        text = encoder.encode(texts)['eot_feats'].cpu()
        images = torch.stack([s.image_embedding for s in samples])
        probs = postprocess.retrieval_scores(images, text, encoder.logit_scale.cpu())
        probs = probs.softmax(dim=0)  # [images, texts]
        found: Dict[int, List[InstanceData]] = {}
        for t, text_ in enumerate(texts):
            best = int(probs[:, t].argmax())
            packed = ground(best)
            packed['data_samples'].set_metainfo(dict(text=[text_]))
            instances = self.model.test_step(self.collate_fn([packed]))[0].pred_instances.cpu()
            instances.labels[:] = t
            found.setdefault(best, []).append(instances)
        for i, sample in enumerate(samples):
            sample.retrieval_probs = probs[i]
            if i in found:
                sample.pred_instances = InstanceData.cat(found[i])

    # ------------------------------------------------------------------ drawing
    def visualize(self, inputs: List[dict], preds: List[DetDataSample], show: bool = False,
                  pred_score_thr: float = 0.3, draw: bool = True) -> Optional[List[np.ndarray]]:
        """Drawings (RGB ``[H, W, 3]`` uint8) with mmdet's ``DetLocalVisualizer``: masks with
        class names / phrases, the task's title (caption, retrieval probabilities) on top."""
        if not draw:
            return None
        drawings = []
        for item, sample in zip(inputs, preds):
            meta = sample.metainfo
            task = get_task(meta['task'])
            names = list(meta.get('text', ())) + list(meta.get('stuff_text', ()))
            self.visualizer.dataset_meta = dict(classes=names, palette=self._palette(names))
            thr = pred_score_thr if 'instances' in task.results else -1
            self.visualizer.add_datasample(meta['name'], mmcv.bgr2rgb(item['img']),
                                           self._drawable(sample, thr), draw_gt=False,
                                           pred_score_thr=-1)
            drawing = self.visualizer.get_image()
            title = task.title(sample) if task.title else ''
            if title:
                drawing = draw_title(self.visualizer, drawing, title)
            if show:
                self.visualizer.show(drawing, win_name=meta['name'])
            drawings.append(drawing)
        return drawings

    def _palette(self, names: List[str]) -> List[tuple]:
        palette = (DATASETS.get(self._dataset_cfg['type']).METAINFO.get('palette')
                   if names == self.dataset_classes().get('classes') else None)
        return list(palette) if palette else get_palette('random', max(len(names), 1))

    @staticmethod
    def _drawable(sample: DetDataSample, score_thr: float) -> DetDataSample:
        """The fields DetLocalVisualizer draws; instances above ``score_thr``, without empty
        masks (which its label placement cannot handle) and without the all-zero boxes."""
        drawable = DetDataSample()
        if 'pred_sem_seg' in sample:
            drawable.pred_sem_seg = sample.pred_sem_seg
        if 'pred_panoptic_seg' in sample and sample.metainfo['panoptic_segments']:
            drawable.pred_panoptic_seg = sample.pred_panoptic_seg
        if 'pred_instances' in sample:
            inst = sample.pred_instances
            keep = (inst.scores > score_thr) & inst.masks.flatten(1).any(1)
            drawable.pred_instances = InstanceData(labels=inst.labels[keep],
                                                   scores=inst.scores[keep],
                                                   masks=inst.masks[keep])
        return drawable

    # ------------------------------------------------------------------ results
    def postprocess(self, preds: List[DetDataSample],
                    visualization: Optional[List[np.ndarray]] = None,
                    return_datasamples: bool = False, out_dir: str = '',
                    return_vis: bool = False, no_save_vis: bool = False) -> dict:
        """Result dicts (``results.to_result``), saved into ``out_dir/<name>/`` if given."""
        results = [to_result(sample) for sample in preds]
        for i, result in enumerate(results if out_dir else []):
            drawing = None if no_save_vis or not visualization else visualization[i]
            result['out_dir'] = save(result, osp.join(out_dir, result['name']), drawing)
        output = dict(predictions=preds if return_datasamples else results,
                      visualization=visualization if return_vis else None)
        if 'retrieval' in results[0]:
            output['retrieval'] = {text: [r['retrieval'][text] for r in results]
                                   for text in results[0]['retrieval']}
            if out_dir:
                with open(osp.join(out_dir, 'retrieval.json'), 'x') as f:
                    json.dump(output['retrieval'], f, indent=1)
        return output
