"""Referring segmentation fine-tuning overfits: tools/train.py runs
xdecoder-tiny_finetune_ref-seg_refcocog.py (the grounding loss alone) on two tiny images in
RefCOCOg's download format (refs(umd).p + instances.json, mmdet's RefCocoDataset), with the full
focal-T model from the seeded synthetic weights; XDecoderInferencer with the result must then
segment every training phrase."""
import json
import pickle
import sys

import numpy as np
import pytest
from PIL import Image
from test_train_joint import HEAD_LR_MULT, SIZE, derived_config
from xdecoder_test_utils import CONFIGS, ROOT

import projects.XDecoder.xdecoder  # noqa: F401  (registers the modules)

CONFIG = str(CONFIGS / 'xdecoder-tiny_finetune_ref-seg_refcocog.py')
ITERS = 40
# image id -> [(phrase, box (y0, y1, x0, x1), colour)]: one object per phrase, on a blue wall.
OBJECTS = {
    1: [('the red square', (8, 40, 8, 40), (220, 30, 30))],
    2: [('the small red square', (4, 24, 4, 24), (220, 30, 30)),
        ('the green car', (32, 60, 20, 60), (30, 200, 40))],
}


def write_refcocog(root):
    """data/coco/{train2014, refcocog/instances.json, refcocog/refs(umd).p}."""
    (root / 'train2014').mkdir(parents=True)
    (root / 'refcocog').mkdir()
    images, anns, refs, masks = [], [], [], {}
    for img_id, objects in OBJECTS.items():
        name = f'COCO_train2014_{img_id:012d}.jpg'
        rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
        rgb[:] = (40, 60, 200)
        for phrase, (y0, y1, x0, x1), colour in objects:
            rgb[y0:y1, x0:x1] = colour
            ann_id = len(anns) + 1
            anns.append(dict(id=ann_id, image_id=img_id, category_id=1, iscrowd=0,
                             segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]],
                             area=(x1 - x0) * (y1 - y0), bbox=[x0, y0, x1 - x0, y1 - y0]))
            refs.append(dict(ref_id=ann_id, ann_id=ann_id, image_id=img_id, split='train',
                             category_id=1, sentences=[dict(sent_id=ann_id, raw=phrase,
                                                            sent=phrase,
                                                            tokens=phrase.split())]))
            mask = np.zeros((SIZE, SIZE), bool)
            mask[y0:y1, x0:x1] = True
            masks[phrase] = (str(root / 'train2014' / name), mask)
        Image.fromarray(rgb).save(root / 'train2014' / name, quality=95)
        images.append(dict(id=img_id, file_name=name, height=SIZE, width=SIZE))
    (root / 'refcocog' / 'instances.json').write_text(json.dumps(dict(
        images=images, annotations=anns, categories=[dict(id=1, name='thing')])))
    with open(root / 'refcocog' / 'refs(umd).p', 'wb') as f:
        pickle.dump(refs, f)
    return masks


@pytest.fixture(scope='module')
def fine_tuned(tmp_path_factory, synthetic_checkpoint):
    sys.path.insert(0, str(ROOT / 'tools'))
    import train as train_tool
    tmp = tmp_path_factory.mktemp('referring')
    masks = write_refcocog(tmp / 'coco')
    # The learning rates of test_train_joint.py: the official 1e-4, class_embed (whose
    # query-phrase similarity picks the grounding query) at 20x.
    config = derived_config(tmp, CONFIG, optim_wrapper=dict(
        paramwise_cfg=dict(custom_keys=HEAD_LR_MULT)))
    train_tool.main([config, '--work-dir', str(tmp / 'work'), '--cfg-options',
                     f'load_from={synthetic_checkpoint}', 'randomness.seed=0',
                     f'train_dataloader.dataset.data_root={tmp / "coco"}',
                     f'train_dataloader.dataset.pipeline.2.scale={SIZE}',
                     'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                     'model.criterion.grounding.num_points=1024',
                     'model.backbone.drop_path_rate=0.0',
                     'param_scheduler.1.milestones=[1000]', 'param_scheduler.1.end=1000',
                     f'train_cfg.max_iters={ITERS}', f'default_hooks.checkpoint.interval={ITERS}',
                     'default_hooks.checkpoint.save_best=None',
                     'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'])
    checkpoint = tmp / 'work' / f'iter_{ITERS}.pth'
    yield masks, checkpoint
    checkpoint.unlink()


def test_referring_masks_of_the_training_phrases(fine_tuned):
    from projects.XDecoder.xdecoder import XDecoderInferencer
    masks, checkpoint = fine_tuned
    inferencer = XDecoderInferencer(CONFIG, weights=str(checkpoint), device='cpu')
    for phrase, (path, truth) in masks.items():
        prediction = inferencer(path, texts=[phrase], task='referring', scale=SIZE)
        mask = prediction['predictions'][0]['referring']['masks'][0]
        iou = np.sum(mask & truth) / np.sum(mask | truth)
        assert iou > 0.8, (phrase, iou)
