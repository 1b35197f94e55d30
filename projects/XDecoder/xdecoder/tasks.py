"""Every X-Decoder task, in one table: what it reads, how it runs, what it returns and saves.

How a task flows
----------------
1. ``inferencer('photo.jpg', texts='person.car', stuff_texts='sky', task='panoptic',
   out_dir='out')`` looks the task up in :data:`TASKS`. :func:`texts_to_metainfo` turns the texts
   into sample metainfo in the datasets' convention: ``text`` = the class names (the things, for
   panoptic) or the phrases, ``stuff_text`` = the stuff names.
2. ``XDecoderInferencer.preprocess`` reads each image once and runs the config's test pipeline
   with the task's ``resize`` swapped in (``None``: the config's own); each sample's metainfo
   carries ``task``, ``text`` and ``stuff_text``. Dataset samples carry no ``task``: for them the
   model's ``task`` (the config's ``model.task``) applies.
3. ``XDecoder.predict`` reads the task from the samples, runs one generic decoder pass for the
   batch (``generic_pass``) or the grounding / captioning modes per image, and the task's
   post-processing ``XDecoder._predict_<task>`` (``-`` written ``_``) fills the sample's
   ``fields``.
4. ``XDecoderInferencer.visualize`` draws the samples with mmdet's ``DetLocalVisualizer``,
   the task's ``title`` on top.
5. ``XDecoderInferencer.postprocess`` turns each sample into a result dict
   (:func:`~.results.to_result`, the parts named in ``results``) and, with ``out_dir``, writes
   ``out/photo/`` (:func:`~.results.save`; :func:`~.results.load_saved` reads it back).

Adding a task: a :class:`TaskSpec` here, its ``_predict_<task>`` in ``xdecoder.py`` (plus a pure
function in ``postprocess.py``), and, for a new kind of result, its part in ``results.py``.
"""
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmdet.structures import DetDataSample

from .text_encoder import TextEncoder

Texts = Union[None, str, Sequence[str]]


def _caption_title(sample: DetDataSample) -> str:
    return sample.pred_caption


def _retrieval_title(sample: DetDataSample) -> str:
    return '\n'.join(f'{p:.3f}  {t}'
                     for t, p in zip(sample.metainfo['text'], sample.retrieval_probs.tolist()))


@dataclass(frozen=True)
class TaskSpec:
    """One task.

    Args:
        name: the task's name (``model.task``, the sample's ``task``, the inferencer's ``task``).
        texts: what the texts are: ``'classes'`` (a vocabulary: ``text`` = names, or things with
            ``stuff_text`` = stuff), ``'phrases'``, ``'one phrase'``, ``'distinct phrases'``, or
            ``None`` (the task takes no text).
        generic_pass: one generic decoder pass serves the whole batch; otherwise the task runs
            per image (its extra queries differ per image).
        fields: the data-sample fields ``predict`` fills.
        results: the parts of the inferencer's result dict (see ``results.py``).
        resize: the inferencer's test-time resize (``ResizeShortestEdge`` arguments) for images
            of any size; ``None`` keeps the config's test pipeline resize.
        title: what the drawing shows as its title, if anything.
        train_targets: the ground-truth fields segmentation training needs (empty: the task
            cannot be trained).
        max_classes: the most class names the saved result can index.
        thing_stuff: the labels split into things (``text``) and stuff (``stuff_text``); without
            texts the inferencer takes a dataset's ``thing_classes`` and ``stuff_classes``.
    """
    name: str
    texts: Optional[str]
    generic_pass: bool
    fields: Tuple[str, ...]
    results: Tuple[str, ...]
    resize: Optional[dict] = None
    title: Optional[Callable[[DetDataSample], str]] = None
    train_targets: Tuple[str, ...] = ()
    max_classes: Optional[int] = None
    thing_stuff: bool = False


# Resizes where the config's is not the task's (the dataset configs' evaluation resizes can
# differ: coco_caption.py uses the official evaluation's fixed 224 x 224, while photos of any
# shape keep their aspect here).
_REFERRING = dict(scale=512, max_size=1024, interpolation='bilinear')  # RefCOCO evaluation
_CAPTION = dict(scale=224, max_size=None, interpolation='bilinear')  # MMDetection caption config
# Official demo: short side 224 bicubic for the scores; each text's best image is then grounded
# at the referring scale.
_RETRIEVAL = dict(scale=224, max_size=None, interpolation='bicubic')
# The official demos' torchvision Resize(512) bicubic, when a config has no resize of its own.
FALLBACK_RESIZE = dict(scale=512, max_size=None, interpolation='bicubic')

TASKS: Dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec('semantic', 'classes', True, ('pred_sem_seg', ), ('classes', 'semantic'),
                 train_targets=('gt_sem_seg', ), max_classes=255),  # semantic.png, 255 = none
        TaskSpec('instance', 'classes', True, ('pred_instances', ), ('classes', 'instances'),
                 train_targets=('gt_instances', )),
        TaskSpec('panoptic', 'classes', True, ('pred_panoptic_seg', 'panoptic_segment_ids'),
                 ('classes', 'panoptic'), train_targets=('gt_instances', 'gt_sem_seg'),
                 thing_stuff=True),
        TaskSpec('referring', 'phrases', False, ('pred_instances', ), ('referring', ),
                 resize=_REFERRING),
        TaskSpec('caption', None, False, ('pred_caption', 'caption_token_ids'), ('caption', ),
                 resize=_CAPTION, title=_caption_title),
        TaskSpec('ref-caption', 'one phrase', False,
                 ('pred_instances', 'pred_caption', 'caption_token_ids'),
                 ('referring', 'caption'), resize=_CAPTION, title=_caption_title),
        TaskSpec('retrieval', 'distinct phrases', True,
                 ('image_embedding', 'caption_embeddings', 'backbone_image_embedding'),
                 ('retrieval', 'referring'), resize=_RETRIEVAL, title=_retrieval_title),
    )
}

# The tasks segmentation training serves (XDecoderSegLoss).
TRAINABLE_TASKS = tuple(name for name, spec in TASKS.items() if spec.train_targets)


def get_task(name: str) -> TaskSpec:
    """The spec of a task name; ``ValueError`` naming the choices for an unknown one."""
    if name not in TASKS:
        raise ValueError(f'Unknown task {name!r}; choose one of {tuple(TASKS)}.')
    return TASKS[name]


def parse_texts(texts: Texts) -> List[str]:
    """``'a.b.c'`` -> ``['a', 'b', 'c']`` (empty items dropped, as mmdet's demos); a list is
    taken as given."""
    if texts is None:
        return []
    if isinstance(texts, str):
        return [t.strip() for t in texts.split('.') if t.strip()]
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f'texts must be a list of str or an "a.b.c" string, got {texts!r}')
    return list(texts)


def texts_to_metainfo(task: TaskSpec, texts: Texts = None, stuff_texts: Texts = None,
                      dataset_classes: Optional[Dict[str, List[str]]] = None) -> dict:
    """The sample metainfo (``text``, ``stuff_text``) of a task's texts, checked.

    For a vocabulary, ``texts=None`` and ``stuff_texts=None`` take ``dataset_classes`` (a
    dataset's ``classes``, or its ``thing_classes`` / ``stuff_classes`` for panoptic).
    """
    if task.texts == 'classes':
        things, stuff = parse_texts(texts), parse_texts(stuff_texts)
        if texts is None and stuff_texts is None:
            meta = dataset_classes or {}
            things = meta.get('classes', [])
            if task.thing_stuff and 'thing_classes' in meta:
                things, stuff = meta['thing_classes'], meta.get('stuff_classes', [])
        if not things and not stuff:
            raise ValueError(f'Task {task.name!r}: the vocabulary is empty; pass texts=[...] or '
                             '"a.b.c" (or texts=None for the config dataset\'s classes).')
        TextEncoder.check_vocabulary(list(things) + list(stuff))
        if task.max_classes and len(things) + len(stuff) > task.max_classes:
            raise ValueError(f'{len(things) + len(stuff)} class names: {task.name} results hold '
                             f'labels 0..{task.max_classes - 1}; split the vocabulary.')
        return dict(text=list(things), stuff_text=list(stuff)) if stuff else dict(text=things)
    phrases = parse_texts(texts)
    if task.texts is None:
        if phrases:
            warnings.warn(f'{task.name} ignores texts; ref-caption captions a phrase\'s region.')
        return {}
    if not phrases or not all(p.strip() for p in phrases):
        raise ValueError(f'Task {task.name!r} needs non-empty phrases: texts="the red car" or '
                         '["the red car", "the sky"].')
    if task.texts == 'one phrase' and len(phrases) != 1:
        raise ValueError(f'{task.name} takes one phrase, got {phrases}.')
    if task.texts == 'distinct phrases' and len(set(phrases)) != len(phrases):
        raise ValueError(f'Duplicate {task.name} texts in {phrases}; give each text once.')
    return dict(text=phrases)
