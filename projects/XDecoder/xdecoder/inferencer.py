"""One inferencer for every X-Decoder task, on mmengine's ``BaseInferencer`` conventions.

    >>> from projects.XDecoder.xdecoder import XDecoderInferencer
    >>> inferencer = XDecoderInferencer('xdecoder-tiny_zeroshot_semseg.py',
    ...                                 weights='xdecoder_focalt_best_openseg.pt')
    >>> result = inferencer('photo.jpg', texts='sky.tree.building', out_dir='outputs')
    >>> result['predictions'][0]['sem_seg']        # uint8 [H, W], index into the vocabulary

Inputs: an image path, a folder (its image files, sorted by name), a numpy array (BGR, mmcv's
convention; ``rgb=True`` for RGB arrays such as ``skimage.data`` or ``np.asarray(PIL image)``),
a ``PIL.Image`` (its own mode decides), or a list of these. Grayscale, RGBA and palette images
become 3-channel RGB.

Test-time resize (SPEC §3.1), applied to the image before the network; predictions always come
back at the size of the image given:

============================  ===============================================================
semantic/instance/panoptic    the config's test pipeline (ADE20K configs: short side 640, long
                              side <= 2560, PIL bilinear, as the official evaluation)
referring                     short side 512, long side <= 1024, PIL bilinear (RefCOCO eval.)
caption, ref-caption          short side 224, PIL bilinear (MMDetection caption config)
retrieval                     short side 224, PIL bicubic for the scores; the best image then
                              goes through ``referring`` at its scale (official demo)
============================  ===============================================================

``scale=N`` replaces the short side of every pass of the call (long side then uncapped; PIL
bicubic for the segmentation tasks, as the official demos). Images above
``max_pixels`` are first shrunk (with a warning): the mask logits are resized back to the image
size, ``num_queries x H x W`` floats (101 x 4 bytes per pixel, before copies).

Saved files (``out_dir``), one folder per image, named after the file (or ``image_<i>`` for
arrays; ``_<i>`` appended when two inputs share a name). An existing folder is never written
into: the call refuses before running the model (``FileExistsError``).
See :meth:`XDecoderInferencer.save` for the layout.
"""
import collections
import copy
import json
import os
import os.path as osp
import textwrap
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

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
from mmengine.structures import InstanceData, PixelData

from . import postprocess
from .checkpoint import CHECKPOINT_HELP, check_checkpoint_file
from .xdecoder import TASKS

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
SEGMENTATION_TASKS = ('semantic', 'instance', 'panoptic')
# Resize of the tasks that do not take it from the config (SPEC §3.1).
TASK_RESIZE = {
    'referring': dict(scale=512, max_size=1024, interpolation='bilinear'),
    'caption': dict(scale=224, max_size=None, interpolation='bilinear'),
    'ref-caption': dict(scale=224, max_size=None, interpolation='bilinear'),
    'retrieval': dict(scale=224, max_size=None, interpolation='bicubic'),
}
# Official demos (torchvision Resize(512), bicubic) when a config has no resize of its own.
FALLBACK_RESIZE = dict(scale=512, max_size=None, interpolation='bicubic')
META_KEYS = ('img_id', 'ori_shape', 'img_shape', 'scale_factor', 'text', 'thing_text')

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


def parse_texts(texts: Union[None, str, Sequence[str]]) -> List[str]:
    """``'a.b.c'`` -> ``['a', 'b', 'c']`` (empty items dropped, as mmdet's demos); a list is
    taken as given."""
    if texts is None:
        return []
    if isinstance(texts, str):
        return [t.strip() for t in texts.split('.') if t.strip()]
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f'texts must be a list of str or an "a.b.c" string, got {texts!r}')
    return list(texts)


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

    Call: ``inferencer(inputs, texts=None, task=None, ...)``, see :meth:`__call__`. Each
    prediction is a dict with ``name``, ``source`` (path or None), ``shape`` (H, W) and per task:

    * semantic: ``classes`` (K names), ``sem_seg`` uint8 [H, W] (255 = no class, only with
      ``test_cfg.semantic_score_thr``);
    * instance: ``classes``, ``instances`` = dict(labels int64 [N], scores float32 [N],
      masks bool [N, H, W]), sorted by score;
    * panoptic: ``classes`` (things then stuff), ``panoptic_seg`` int32 [H, W] segment ids
      (0 = void), ``segments`` [{id, label, isthing, score, area}];
    * referring: ``referring`` = dict(phrases, masks bool [N, H, W], scores float32 [N]);
    * caption: ``caption`` = dict(text, token_ids [77]); ref-caption: both of these;
    * retrieval: ``retrieval`` = {text: probability of this image}, and ``referring`` on the
      image that is best for a text.
    """

    preprocess_kwargs: set = {'task', 'metainfo', 'rgb', 'scale'}
    forward_kwargs: set = set()
    visualize_kwargs: set = {'show', 'pred_score_thr', 'draw'}
    postprocess_kwargs: set = {'out_dir', 'return_datasamples', 'return_vis', 'no_save_vis'}

    def __init__(self,
                 model: Union[str, Config, dict] = 'xdecoder-tiny_zeroshot_semseg.py',
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 test_cfg: Optional[dict] = None,
                 max_pixels: int = 8 * 2**20) -> None:
        cfg = resolve_config(model)
        if weights is not None:
            check_checkpoint_file(weights, cfg.model.get('backbone', {}).get('embed_dim'))
        if test_cfg:
            cfg.model.test_cfg = {**cfg.model.get('test_cfg', {}), **test_cfg}
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        init_default_scope('mmdet')
        self.max_pixels = max_pixels
        self.default_task = cfg.model.get('task', 'semantic')
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
        resizes = [t for t in dataset.get('pipeline', []) if 'Resize' in t['type']]
        self._config_resize = [copy.deepcopy(dict(t)) for t in resizes]
        self._dataset_cfg = dataset
        return self._pipeline(self.default_task, None)

    def _init_collate(self, cfg: Config):
        return pseudo_collate

    def _init_visualizer(self, cfg: Config):
        vis_cfg = copy.deepcopy(cfg.get('visualizer', dict(type='DetLocalVisualizer')))
        # No storage backends: the inferencer writes vis.jpg itself, into the image's folder.
        vis_cfg.pop('vis_backends', None)
        vis_cfg['name'] = f'xdecoder_inferencer_{id(self)}_{time.time_ns()}'
        return VISUALIZERS.build(vis_cfg)

    def _pipeline(self, task: str, scale: Optional[int]) -> Compose:
        key = (task, scale)
        if key not in self._pipelines:
            if task in SEGMENTATION_TASKS and scale is None and self._config_resize:
                resizes = self._config_resize
            else:
                spec = dict(TASK_RESIZE.get(task, FALLBACK_RESIZE))
                if scale is not None:
                    spec.update(scale=int(scale), max_size=None)
                resizes = [dict(type='ResizeShortestEdge', backend='pillow', **spec)]
            transforms = [dict(type='LoadImageFromNDArray'), *resizes,
                          dict(type='PackDetInputs', meta_keys=META_KEYS)]
            self._pipelines[key] = Compose([TRANSFORMS.build(t) for t in transforms])
        return self._pipelines[key]

    # ------------------------------------------------------------------ vocabulary
    def dataset_classes(self) -> Dict[str, List[str]]:
        """Class names of the config's test dataset: ``classes`` and, for panoptic datasets,
        ``thing_classes`` / ``stuff_classes``."""
        meta = dict(DATASETS.get(self._dataset_cfg['type']).METAINFO) if self._dataset_cfg else {}
        meta.update(self._dataset_cfg.get('metainfo', {}) if self._dataset_cfg else {})
        return {k: list(v) for k, v in meta.items() if k.endswith('classes')}

    def vocabulary(self, task: str, texts=None, stuff_texts=None) -> Tuple[List[str], List[str]]:
        """``(names, things)`` a task scores against; labels index ``names`` (things first,
        then ``stuff_texts``). Raises ``ValueError`` for an unusable vocabulary."""
        things, stuff = parse_texts(texts), parse_texts(stuff_texts)
        if texts is None and stuff_texts is None:
            meta = self.dataset_classes()
            if task == 'panoptic' and 'thing_classes' in meta:
                things, stuff = meta['thing_classes'], meta['stuff_classes']
            else:
                things = meta.get('classes', [])
        if not things and not stuff:
            raise ValueError(f'Task {task!r}: the vocabulary is empty; pass texts=[...] or '
                             '"a.b.c" (or texts=None for the config dataset\'s classes).')
        names = things + stuff
        if task == 'semantic' and len(names) > 255:
            raise ValueError(f'{len(names)} class names: semantic.png holds labels 0..254 '
                             '(255 = no class); split the vocabulary.')
        self.model.text_encoder.class_embeddings(names)  # validates; cached for the run
        return names, things

    @torch.no_grad()
    def text_embeddings(self, task: str, texts=None, stuff_texts=None) -> torch.Tensor:
        """What the model compares queries with: class embeddings ``[K+1, D]`` (background
        last) for segmentation tasks, phrase EOT embeddings ``[N, D]`` otherwise."""
        if task in SEGMENTATION_TASKS:
            return self.model.text_encoder.class_embeddings(
                self.vocabulary(task, texts, stuff_texts)[0])
        return self.model.text_encoder.encode(self._phrases(task, texts))['eot_feats']

    @staticmethod
    def _phrases(task: str, texts) -> List[str]:
        phrases = parse_texts(texts)
        if not phrases or not all(p.strip() for p in phrases):
            raise ValueError(f'Task {task!r} needs non-empty phrases: texts="the red car" or '
                             '["the red car", "the sky"].')
        if task == 'ref-caption' and len(phrases) != 1:
            raise ValueError(f'ref-caption captions one region: pass one phrase, got {phrases}.')
        if task == 'retrieval' and len(set(phrases)) != len(phrases):
            raise ValueError(f'Duplicate retrieval texts in {phrases}; give each text once.')
        return phrases

    def _metainfo(self, task: str, texts, stuff_texts) -> dict:
        if task in SEGMENTATION_TASKS:
            names, things = self.vocabulary(task, texts, stuff_texts)
            return dict(text=names, thing_text=things)
        if task == 'caption':
            if texts:
                warnings.warn('caption ignores texts; use ref-caption to caption a region.')
            return {}
        return dict(text=self._phrases(task, texts))

    # ------------------------------------------------------------------ inputs
    def _inputs_to_list(self, inputs) -> List[dict]:
        """Descriptors ``{name, source, input}`` (images are read later, one batch at a time)."""
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

    def read_image(self, item, rgb: bool = False) -> np.ndarray:
        """The input as a BGR uint8 ``[H, W, 3]`` array, shrunk to ``max_pixels`` if needed."""
        data, name = (item['input'], item['name']) if isinstance(item, dict) else (item, 'image')
        if isinstance(data, str):
            try:
                # PIL decoding, as the configs' LoadImageFromFile: applies EXIF orientation and
                # makes grayscale / palette / RGBA images 3-channel.
                img = mmcv.imfrombytes(read_bytes(data), flag='color', channel_order='bgr',
                                       backend='pillow')
            except Exception as e:  # PIL raises many types for unreadable files
                raise ValueError(f'Cannot decode image {data}: {e}') from e
        elif isinstance(data, np.ndarray):
            img = self._array_to_bgr(data, rgb)
        elif type(data).__module__.startswith('PIL.'):
            from PIL import ImageOps
            img = np.asarray(ImageOps.exif_transpose(data).convert('RGB'))[..., ::-1]
        else:
            raise TypeError(f'Unsupported input {type(data).__name__}: give a path, a folder, '
                            'a numpy array or a PIL image.')
        h, w = img.shape[:2]
        if h * w > self.max_pixels:
            factor = (self.max_pixels / (h * w))**0.5
            size = (max(int(w * factor), 1), max(int(h * factor), 1))
            warnings.warn(f'{name} is {w}x{h}; shrinking it to {size[0]}x{size[1]} (max_pixels='
                          f'{self.max_pixels}) so that the full-size mask logits fit in memory; '
                          'predictions are at the shrunk size.')
            img = mmcv.imresize(img, size, interpolation='area')
        return np.ascontiguousarray(img)

    @staticmethod
    def _array_to_bgr(array: np.ndarray, rgb: bool) -> np.ndarray:
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

    # ------------------------------------------------------------------ steps
    def preprocess(self, inputs: List[dict], batch_size: int = 1, task: str = 'semantic',
                   metainfo: Optional[dict] = None, rgb: bool = False,
                   scale: Optional[int] = None):
        """Yields collated batches ``dict(inputs=[[3, h, w] uint8 BGR], data_samples=[...])``."""
        pipeline = self._pipeline(task, scale)

        def pipe(i_item):
            i, item = i_item
            return pipeline(dict(img=self.read_image(item, rgb), img_id=i,
                                 **copy.deepcopy(metainfo or {})))

        for chunk in self._get_chunk_data(map(pipe, enumerate(inputs)), batch_size):
            yield self.collate_fn(chunk)

    @torch.no_grad()
    def forward(self, inputs: dict, task: str = 'semantic') -> List[DetDataSample]:
        self.model.task = task
        return [s.cpu() for s in self.model.test_step(inputs)]

    def __call__(self,
                 inputs: Union[InputType, Sequence[InputType]],
                 texts: Union[None, str, Sequence[str]] = None,
                 task: Optional[str] = None,
                 batch_size: int = 1,
                 out_dir: str = '',
                 show: bool = False,
                 stuff_texts: Union[None, str, Sequence[str]] = None,
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
            task: one of ``TASKS``; ``None`` = the config's ``model.task``.
            batch_size: images per forward. Padding is not masked in the model, so images of
                different sizes give (slightly) different results in a batch than alone.
            out_dir: if given, save the predictions there (see :meth:`save`).
            show: display the drawings in a window.
            stuff_texts: stuff names for panoptic (labels follow ``texts``); for instance
                they compete for the queries and are then dropped (the official evaluation).
            rgb: numpy inputs are RGB instead of BGR.
            scale: short side for this call instead of the task's default (see module doc).
            pred_score_thr: instances below it are not drawn.
            return_vis: return the drawings (RGB arrays) as ``visualization``.
            no_save_vis: do not draw ``vis.jpg`` into ``out_dir`` (drawing takes seconds).
            return_datasamples: return the detector's ``DetDataSample`` s instead of dicts
                (for retrieval, those of the scoring pass).

        Returns:
            ``dict(predictions=[one per image, input order], visualization=[RGB] or None)``,
            plus ``retrieval = {text: [probability per image]}`` for retrieval.
        """
        task = task or self.default_task
        if task not in TASKS:
            raise ValueError(f'Unknown task {task!r}; choose one of {TASKS}.')
        items = self._inputs_to_list(inputs)
        metainfo = self._metainfo(task, texts, stuff_texts)
        if out_dir:
            self._check_out_dir(out_dir, items, task)
        # instance: stuff names only compete; the official evaluation keeps thing detections.
        self.model.test_cfg['instance_thing_only'] = bool(parse_texts(stuff_texts))
        samples = []
        for data in self.preprocess(items, batch_size, task, metainfo, rgb, scale):
            samples.extend(self.forward(data, task))
        preds = [self._to_prediction(item, s, task) for item, s in zip(items, samples)]
        extra = {}
        if task == 'retrieval':
            extra['retrieval'] = self._retrieve(items, samples, preds, metainfo['text'], rgb,
                                                scale)
        draw = (bool(out_dir) and not no_save_vis) or show or return_vis
        visualization = self.visualize(items, preds, show=show, pred_score_thr=pred_score_thr,
                                       draw=draw, rgb=rgb)
        return {**self.postprocess(preds, visualization, return_datasamples, out_dir=out_dir,
                                   return_vis=return_vis, no_save_vis=no_save_vis,
                                   samples=samples, retrieval=extra.get('retrieval')),
                **extra}

    def _retrieve(self, items, samples, preds, texts, rgb, scale) -> Dict[str, List[float]]:
        """Softmax over images of ``min(exp(logit_scale), 100) * cos(global query, text EOT)``;
        then referring segmentation of each text on its best image (official demo)."""
        encoder = self.model.text_encoder
        with torch.no_grad():
            text = encoder.encode(texts)['eot_feats'].cpu()
            images = torch.stack([s.image_embedding for s in samples])
            probs = postprocess.retrieval_scores(images, text, encoder.logit_scale.cpu())
            probs = probs.softmax(dim=0)  # [images, texts]
        for pred, row in zip(preds, probs.tolist()):
            pred['retrieval'] = dict(zip(texts, row))
        found: Dict[int, List[dict]] = {}
        for t, text_ in enumerate(texts):
            best = int(probs[:, t].argmax())
            data = next(self.preprocess([items[best]], 1, 'referring', dict(text=[text_]), rgb,
                                        scale))
            sample = self.forward(data, 'referring')[0]
            found.setdefault(best, []).append(
                self._to_prediction(items[best], sample, 'referring')['referring'])
        for best, refs in found.items():
            preds[best]['referring'] = dict(
                phrases=[p for r in refs for p in r['phrases']],
                masks=np.concatenate([r['masks'] for r in refs]),
                scores=np.concatenate([r['scores'] for r in refs]))
        return {text_: probs[:, t].tolist() for t, text_ in enumerate(texts)}

    @staticmethod
    def _to_prediction(item: dict, sample: DetDataSample, task: str) -> dict:
        meta = sample.metainfo
        pred = dict(name=item['name'], source=item['source'], task=task,
                    shape=tuple(meta['ori_shape'][:2]))
        if task in SEGMENTATION_TASKS:
            pred['classes'] = list(meta['text'])
        if task == 'semantic':
            pred['sem_seg'] = sample.pred_sem_seg.sem_seg[0].numpy().astype(np.uint8)
        elif task == 'instance':
            inst = sample.pred_instances
            pred['instances'] = dict(labels=inst.labels.numpy().astype(np.int64),
                                     scores=inst.scores.numpy().astype(np.float32),
                                     masks=inst.masks.numpy().astype(bool))
        elif task == 'panoptic':
            pred['panoptic_seg'] = sample.panoptic_segment_ids.numpy().astype(np.int32)
            pred['segments'] = [
                dict(id=int(s['id']), label=int(s['label']), isthing=bool(s['isthing']),
                     score=float(s['score']), area=int(s['area']))
                for s in meta['panoptic_segments']]
        if task in ('referring', 'ref-caption'):
            inst = sample.pred_instances
            pred['referring'] = dict(phrases=list(meta['text']),
                                     masks=inst.masks.numpy().astype(bool),
                                     scores=inst.scores.numpy().astype(np.float32))
        if task in ('caption', 'ref-caption'):
            pred['caption'] = dict(text=sample.pred_caption,
                                   token_ids=[int(i) for i in sample.caption_token_ids])
        return pred

    # ------------------------------------------------------------------ drawing
    def visualize(self, inputs: List[dict], preds: List[dict], show: bool = False,
                  pred_score_thr: float = 0.3, draw: bool = True,
                  rgb: bool = False) -> Optional[List[np.ndarray]]:
        """Drawings (RGB ``[H, W, 3]`` uint8) with mmdet's ``DetLocalVisualizer``: masks with
        class names / phrases, the caption or retrieval probabilities as a title."""
        if not draw:
            return None
        drawings = []
        for item, pred in zip(inputs, preds):
            image = mmcv.bgr2rgb(self.read_image(item, rgb))
            names, sample = self._drawable(pred, pred_score_thr)
            self.visualizer.dataset_meta = dict(classes=names,
                                                palette=self._palette(names))
            self.visualizer.add_datasample(pred['name'], image, sample, draw_gt=False,
                                           pred_score_thr=-1)
            drawing = self.visualizer.get_image()
            title = self._title(pred)
            if title:
                drawing = self._draw_title(drawing, title)
            if show:
                self.visualizer.show(drawing, win_name=pred['name'])
            drawings.append(drawing)
        return drawings

    def _palette(self, names: List[str]) -> List[tuple]:
        meta = self.dataset_classes()
        palette = (DATASETS.get(self._dataset_cfg['type']).METAINFO.get('palette')
                   if self._dataset_cfg and names == meta.get('classes') else None)
        return list(palette) if palette else get_palette('random', max(len(names), 1))

    @staticmethod
    def _drawable(pred: dict, pred_score_thr: float) -> Tuple[List[str], DetDataSample]:
        """The prediction as the fields DetLocalVisualizer draws, without empty masks (which
        its label placement cannot handle)."""
        sample = DetDataSample()
        names = pred.get('classes', [])
        if 'sem_seg' in pred:
            sample.pred_sem_seg = PixelData(sem_seg=torch.from_numpy(pred['sem_seg'][None]))
        if 'instances' in pred:
            inst = pred['instances']
            keep = (inst['scores'] > pred_score_thr) & inst['masks'].any(axis=(1, 2))
            sample.pred_instances = InstanceData(
                labels=torch.from_numpy(inst['labels'][keep]),
                scores=torch.from_numpy(inst['scores'][keep]),
                masks=torch.from_numpy(inst['masks'][keep]))
        if pred.get('segments'):
            panoptic = postprocess.panoptic_to_mmdet(
                torch.from_numpy(pred['panoptic_seg']), pred['segments'], len(names))
            sample.pred_panoptic_seg = PixelData(sem_seg=panoptic[None])
        if 'referring' in pred:
            ref = pred['referring']
            names = ref['phrases']
            keep = ref['masks'].any(axis=(1, 2))
            sample.pred_instances = InstanceData(
                labels=torch.arange(len(names))[torch.from_numpy(keep)],
                scores=torch.from_numpy(ref['scores'][keep]),
                masks=torch.from_numpy(ref['masks'][keep]))
        return names, sample

    @staticmethod
    def _title(pred: dict) -> str:
        if 'caption' in pred:
            return pred['caption']['text']
        if 'retrieval' in pred:
            return '\n'.join(f'{p:.3f}  {t}' for t, p in pred['retrieval'].items())
        return ''

    def _draw_title(self, image: np.ndarray, title: str) -> np.ndarray:
        h, w = image.shape[:2]
        size = max(8, min(h, w) // 30)
        lines = [line for part in title.splitlines()
                 for line in textwrap.wrap(part, max(10, int(w / (0.6 * size))))]
        self.visualizer.set_image(image)
        self.visualizer.draw_texts('\n'.join(lines), np.array([size // 2, size // 2]),
                                   colors='white', font_sizes=size,
                                   vertical_alignments='top',
                                   bboxes=[dict(facecolor='black', alpha=0.7, pad=0.5,
                                                edgecolor='none')])
        return self.visualizer.get_image()

    # ------------------------------------------------------------------ results
    def postprocess(self, preds: List[dict], visualization: Optional[List[np.ndarray]],
                    return_datasamples: bool = False, out_dir: str = '',
                    return_vis: bool = False, no_save_vis: bool = False,
                    samples: Optional[List[DetDataSample]] = None,
                    retrieval: Optional[dict] = None) -> dict:
        if out_dir:
            for i, pred in enumerate(preds):
                drawing = None if no_save_vis or not visualization else visualization[i]
                folder = self.save(pred, osp.join(out_dir, pred['name']), drawing)
                pred['out_dir'] = folder
            if retrieval is not None:
                with open(osp.join(out_dir, 'retrieval.json'), 'x') as f:
                    json.dump(retrieval, f, indent=1)
        return dict(predictions=samples if return_datasamples else preds,
                    visualization=visualization if return_vis else None)

    def _check_out_dir(self, out_dir: str, items: List[dict], task: str) -> None:
        targets = [osp.join(out_dir, item['name']) for item in items]
        if task == 'retrieval':
            targets.append(osp.join(out_dir, 'retrieval.json'))
        taken = [t for t in targets if osp.exists(t)]
        if taken:
            raise FileExistsError(
                f'{taken[0]} already exists ({len(taken)} of the {len(targets)} output paths do); '
                'the inferencer does not overwrite results: choose another out_dir or remove them.')

    @staticmethod
    def save(pred: dict, folder: str, drawing: Optional[np.ndarray] = None) -> str:
        """Write one image's prediction into ``folder`` (created; must not exist).

        Layout (labels index the vocabulary as given, listed in ``meta.json``)::

            meta.json          {name, source, task, height, width, classes (K names or null)}
            semantic.png       uint8 [H, W], label index, 255 = no class
            instances.json     [{label, score, mask: COCO RLE {size, counts}}], by score
            panoptic.png       uint16 [H, W] segment id, 0 = void
            panoptic.json      {segments: [{id, label, isthing, score, area}]}
            referring/<k>.png  uint8 0/255, one per phrase, k in phrase order
            referring.json     {phrases: [...], scores: [...]}
            caption.json       {text, token_ids}
            vis.jpg            the drawing
        """
        from pycocotools import mask as mask_utils
        os.makedirs(folder)

        def dump(name, obj):
            with open(osp.join(folder, name), 'x') as f:
                json.dump(obj, f, indent=1)

        h, w = pred['shape']
        dump('meta.json', dict(name=pred['name'], source=pred['source'], task=pred['task'],
                               height=h, width=w, classes=pred.get('classes')))
        if 'sem_seg' in pred:
            mmcv.imwrite(pred['sem_seg'], osp.join(folder, 'semantic.png'))
        if 'instances' in pred:
            inst = pred['instances']
            masks = np.asfortranarray(inst['masks'].transpose(1, 2, 0).astype(np.uint8))
            rles = mask_utils.encode(masks) if len(inst['labels']) else []
            dump('instances.json', [
                dict(label=int(label), score=float(score),
                     mask=dict(size=rle['size'], counts=rle['counts'].decode()))
                for label, score, rle in zip(inst['labels'], inst['scores'], rles)])
        if 'panoptic_seg' in pred:
            mmcv.imwrite(pred['panoptic_seg'].astype(np.uint16), osp.join(folder, 'panoptic.png'))
            dump('panoptic.json', dict(segments=pred['segments']))
        if 'referring' in pred:
            ref = pred['referring']
            for k, mask in enumerate(ref['masks']):
                mmcv.imwrite(mask.astype(np.uint8) * 255, osp.join(folder, 'referring', f'{k}.png'))
            dump('referring.json', dict(phrases=ref['phrases'],
                                        scores=[float(s) for s in ref['scores']]))
        if 'caption' in pred:
            dump('caption.json', pred['caption'])
        if drawing is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawing), osp.join(folder, 'vis.jpg'))
        return folder


def load_saved(folder: str) -> dict:
    """Read a folder written by :meth:`XDecoderInferencer.save` back into the prediction dict
    layout (without ``retrieval``, which lives in ``<out_dir>/retrieval.json``)."""
    from pycocotools import mask as mask_utils

    def load(name):
        with open(osp.join(folder, name)) as f:
            return json.load(f)

    meta = load('meta.json')
    pred = dict(name=meta['name'], source=meta['source'], task=meta['task'],
                shape=(meta['height'], meta['width']))
    if meta['classes'] is not None:
        pred['classes'] = meta['classes']
    if osp.exists(osp.join(folder, 'semantic.png')):
        pred['sem_seg'] = mmcv.imread(osp.join(folder, 'semantic.png'), flag='unchanged')
    if osp.exists(osp.join(folder, 'instances.json')):
        dets = load('instances.json')
        masks = [mask_utils.decode(dict(size=d['mask']['size'], counts=d['mask']['counts']))
                 for d in dets]
        pred['instances'] = dict(
            labels=np.array([d['label'] for d in dets], np.int64),
            scores=np.array([d['score'] for d in dets], np.float32),
            masks=np.stack(masks).astype(bool) if masks else np.zeros((0, *pred['shape']), bool))
    if osp.exists(osp.join(folder, 'panoptic.png')):
        pred['panoptic_seg'] = mmcv.imread(osp.join(folder, 'panoptic.png'),
                                           flag='unchanged').astype(np.int32)
        pred['segments'] = load('panoptic.json')['segments']
    if osp.exists(osp.join(folder, 'referring.json')):
        ref = load('referring.json')
        masks = [mmcv.imread(osp.join(folder, 'referring', f'{k}.png'), flag='unchanged') > 127
                 for k in range(len(ref['phrases']))]
        pred['referring'] = dict(phrases=ref['phrases'], masks=np.stack(masks),
                                 scores=np.array(ref['scores'], np.float32))
    if osp.exists(osp.join(folder, 'caption.json')):
        pred['caption'] = load('caption.json')
    return pred
