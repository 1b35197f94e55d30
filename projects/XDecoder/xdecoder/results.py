"""The inferencer's results: a data sample as a plain dict, and that dict on disk and back.

Each task (``tasks.py``) names the parts of its result; each part reads its fields of the
sample:

============  ======================================================================
classes       ``classes``: the vocabulary (``text`` then ``stuff_text``), labels index it
semantic      ``sem_seg`` uint8 [H, W] (255 = no class, only with a score threshold)
instances     ``instances`` = dict(labels int64 [N], scores float32 [N], masks bool
              [N, H, W]), by score
panoptic      ``panoptic_seg`` int32 [H, W] segment ids (0 = void) and ``segments``
              [{id, label, isthing, score, area}]
referring     ``referring`` = dict(phrases, masks bool [N, H, W], scores float32 [N])
caption       ``caption`` = dict(text, token_ids [77])
retrieval     ``retrieval`` = {text: probability of this image}
============  ======================================================================

Saved files, one folder per image (:func:`save`, read back by :func:`load_saved`)::

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
import json
import os
import os.path as osp
from typing import Optional

import mmcv
import numpy as np
from mmdet.structures import DetDataSample

from .tasks import get_task


def _classes(sample: DetDataSample) -> dict:
    meta = sample.metainfo
    return dict(classes=list(meta['text']) + list(meta.get('stuff_text', ())))


def _semantic(sample: DetDataSample) -> dict:
    return dict(sem_seg=sample.pred_sem_seg.sem_seg[0].numpy().astype(np.uint8))


def _instances(sample: DetDataSample) -> dict:
    inst = sample.pred_instances
    return dict(instances=dict(labels=inst.labels.numpy().astype(np.int64),
                               scores=inst.scores.numpy().astype(np.float32),
                               masks=inst.masks.numpy().astype(bool)))


def _panoptic(sample: DetDataSample) -> dict:
    segments = [dict(id=int(s['id']), label=int(s['label']), isthing=bool(s['isthing']),
                     score=float(s['score']), area=int(s['area']))
                for s in sample.metainfo['panoptic_segments']]
    return dict(panoptic_seg=sample.panoptic_segment_ids.numpy().astype(np.int32),
                segments=segments)


def _referring(sample: DetDataSample) -> dict:
    if 'pred_instances' not in sample:  # retrieval: only the images some text is best on
        return {}
    inst, phrases = sample.pred_instances, sample.metainfo['text']
    return dict(referring=dict(phrases=[phrases[int(i)] for i in inst.labels],
                               masks=inst.masks.numpy().astype(bool),
                               scores=inst.scores.numpy().astype(np.float32)))


def _caption(sample: DetDataSample) -> dict:
    return dict(caption=dict(text=sample.pred_caption,
                             token_ids=[int(i) for i in sample.caption_token_ids]))


def _retrieval(sample: DetDataSample) -> dict:
    return dict(retrieval=dict(zip(sample.metainfo['text'], sample.retrieval_probs.tolist())))


PARTS = dict(classes=_classes, semantic=_semantic, instances=_instances, panoptic=_panoptic,
             referring=_referring, caption=_caption, retrieval=_retrieval)


def to_result(sample: DetDataSample) -> dict:
    """The result dict of one predicted sample (on the CPU): ``name``, ``source`` (path or
    None), ``task``, ``shape`` (H, W) and the parts of its task."""
    meta = sample.metainfo
    task = get_task(meta['task'])
    result = dict(name=meta['name'], source=meta['source'], task=task.name,
                  shape=tuple(meta['ori_shape'][:2]))
    for part in task.results:
        result.update(PARTS[part](sample))
    return result


def save(result: dict, folder: str, drawing: Optional[np.ndarray] = None) -> str:
    """Write one image's result into ``folder`` (created; must not exist), in the layout of
    the module docstring."""
    from pycocotools import mask as mask_utils
    os.makedirs(folder)

    def dump(name, obj):
        with open(osp.join(folder, name), 'x') as f:
            json.dump(obj, f, indent=1)

    h, w = result['shape']
    dump('meta.json', dict(name=result['name'], source=result['source'], task=result['task'],
                           height=h, width=w, classes=result.get('classes')))
    if 'sem_seg' in result:
        mmcv.imwrite(result['sem_seg'], osp.join(folder, 'semantic.png'))
    if 'instances' in result:
        inst = result['instances']
        masks = np.asfortranarray(inst['masks'].transpose(1, 2, 0).astype(np.uint8))
        rles = mask_utils.encode(masks) if len(inst['labels']) else []
        dump('instances.json', [
            dict(label=int(label), score=float(score),
                 mask=dict(size=rle['size'], counts=rle['counts'].decode()))
            for label, score, rle in zip(inst['labels'], inst['scores'], rles)])
    if 'panoptic_seg' in result:
        mmcv.imwrite(result['panoptic_seg'].astype(np.uint16), osp.join(folder, 'panoptic.png'))
        dump('panoptic.json', dict(segments=result['segments']))
    if 'referring' in result:
        ref = result['referring']
        for k, mask in enumerate(ref['masks']):
            mmcv.imwrite(mask.astype(np.uint8) * 255, osp.join(folder, 'referring', f'{k}.png'))
        dump('referring.json', dict(phrases=ref['phrases'],
                                    scores=[float(s) for s in ref['scores']]))
    if 'caption' in result:
        dump('caption.json', result['caption'])
    if drawing is not None:
        mmcv.imwrite(mmcv.rgb2bgr(drawing), osp.join(folder, 'vis.jpg'))
    return folder


def load_saved(folder: str) -> dict:
    """Read a folder written by :func:`save` back into the result dict (without
    ``retrieval``, which lives in ``<out_dir>/retrieval.json``)."""
    from pycocotools import mask as mask_utils

    def load(name):
        with open(osp.join(folder, name)) as f:
            return json.load(f)

    meta = load('meta.json')
    result = dict(name=meta['name'], source=meta['source'], task=meta['task'],
                  shape=(meta['height'], meta['width']))
    if meta['classes'] is not None:
        result['classes'] = meta['classes']
    if osp.exists(osp.join(folder, 'semantic.png')):
        result['sem_seg'] = mmcv.imread(osp.join(folder, 'semantic.png'), flag='unchanged')
    if osp.exists(osp.join(folder, 'instances.json')):
        dets = load('instances.json')
        masks = [mask_utils.decode(dict(size=d['mask']['size'], counts=d['mask']['counts']))
                 for d in dets]
        empty = np.zeros((0, *result['shape']), bool)
        result['instances'] = dict(
            labels=np.array([d['label'] for d in dets], np.int64),
            scores=np.array([d['score'] for d in dets], np.float32),
            masks=np.stack(masks).astype(bool) if masks else empty)
    if osp.exists(osp.join(folder, 'panoptic.png')):
        result['panoptic_seg'] = mmcv.imread(osp.join(folder, 'panoptic.png'),
                                             flag='unchanged').astype(np.int32)
        result['segments'] = load('panoptic.json')['segments']
    if osp.exists(osp.join(folder, 'referring.json')):
        ref = load('referring.json')
        masks = [mmcv.imread(osp.join(folder, 'referring', f'{k}.png'), flag='unchanged') > 127
                 for k in range(len(ref['phrases']))]
        result['referring'] = dict(phrases=ref['phrases'], masks=np.stack(masks),
                                   scores=np.array(ref['scores'], np.float32))
    if osp.exists(osp.join(folder, 'caption.json')):
        result['caption'] = load('caption.json')
    return result
