"""The README's path for a user's own data (xdecoder-tiny_finetune_custom-instance.py): a COCO
instances json with the user's class names, tools/train.py, tools/test.py on the fine-tuned
checkpoint, then XDecoderInferencer with it; and the class-name checks before the first step."""
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from test_train_joint import IMAGES, SIZE, derived_config
from xdecoder_test_utils import CONFIGS, ROOT

import projects.XDecoder.xdecoder  # noqa: F401  (registers the modules)
from projects.XDecoder.xdecoder.errors import DatasetError

CONFIG = str(CONFIGS / 'xdecoder-tiny_finetune_custom-instance.py')
CLASSES = ('person', 'car')


def write_coco(root):
    """data/my_dataset layout: train/ and val/ (the same two images), instances jsons."""
    annotations, images = [], []
    for split in ('train', 'val'):
        (root / split).mkdir(parents=True)
    for img_id, spec in IMAGES.items():
        rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
        rgb[:] = (40, 60, 200)
        for cls, (y0, y1, x0, x1), colour in spec['shapes']:
            rgb[y0:y1, x0:x1] = colour
            mask = np.zeros((SIZE, SIZE), np.uint8)
            mask[y0:y1, x0:x1] = 1
            rle = mask_utils.encode(np.asfortranarray(mask))
            rle['counts'] = rle['counts'].decode()
            annotations.append(dict(id=len(annotations) + 1, image_id=img_id, iscrowd=0,
                                    category_id=CLASSES.index(cls) + 1, segmentation=rle,
                                    area=int(mask.sum()), bbox=[x0, y0, x1 - x0, y1 - y0]))
        for split in ('train', 'val'):
            Image.fromarray(rgb).save(root / split / f'{img_id}.jpg', quality=95)
        images.append(dict(id=img_id, file_name=f'{img_id}.jpg', height=SIZE, width=SIZE))
    (root / 'annotations').mkdir()
    coco = dict(images=images, annotations=annotations,
                categories=[dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)])
    for split in ('train', 'val'):
        (root / 'annotations' / f'instances_{split}.json').write_text(json.dumps(coco))


def options(root, checkpoint, classes=CLASSES):
    names = ','.join(classes)
    return [
        f'load_from={checkpoint}',
        f'train_dataloader.dataset.data_root={root}',
        f'train_dataloader.dataset.metainfo.classes=[{names}]',
        f'val_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.metainfo.classes=[{names}]',
        f'test_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.metainfo.classes=[{names}]',
        f'val_evaluator.ann_file={root}/annotations/instances_val.json',
        f'test_evaluator.ann_file={root}/annotations/instances_val.json',
        f'train_dataloader.dataset.pipeline.3.scale=({SIZE},{SIZE})',
        f'train_dataloader.dataset.pipeline.4.crop_size=({SIZE},{SIZE})',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        f'test_dataloader.dataset.pipeline.1.scale={SIZE}',
        'model.criterion.segmentation.num_points=1024', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=1000', 'default_hooks.checkpoint.interval=2',
        'default_hooks.checkpoint.save_best=None',
    ]


def test_custom_instance_train_test_and_infer(tmp_path, synthetic_checkpoint):
    sys.path[:0] = [str(ROOT / 'tools')]
    import test as test_tool

    import train as train_tool
    root = tmp_path / 'my_dataset'
    write_coco(root)
    work_dir = tmp_path / 'work'
    train_tool.main([CONFIG, '--work-dir', str(work_dir), '--cfg-options',
                     *options(root, synthetic_checkpoint)])
    checkpoint = work_dir / 'iter_2.pth'
    # The fine-tuned checkpoint (mmengine's format) loads without key edits, strictly.
    metrics = test_tool.main([CONFIG, str(checkpoint), '--work-dir', str(tmp_path / 'test'),
                              '--cfg-options', *options(root, synthetic_checkpoint)])
    assert 'coco/segm_mAP' in metrics and 0.0 <= metrics['coco/segm_mAP'] <= 1.0

    # The user's config file names their classes (here in a derived file, as if edited).
    config = derived_config(tmp_path, CONFIG, classes=CLASSES, test_dataloader=dict(
        dataset=dict(metainfo=dict(classes=CLASSES))))
    from projects.XDecoder.xdecoder import XDecoderInferencer
    inferencer = XDecoderInferencer(config, weights=str(checkpoint), device='cpu')
    result = inferencer(str(root / 'val' / '1.jpg'), task='instance', scale=SIZE)
    prediction = result['predictions'][0]
    # The config's classes are the vocabulary by default.
    assert prediction['classes'] == list(CLASSES)
    trained = torch.load(checkpoint, map_location='cpu', weights_only=False, mmap=True)
    state = inferencer.model.state_dict()
    for key in ('decoder.class_embed', 'backbone_proj'):
        assert torch.equal(state[key], trained['state_dict'][key])
    checkpoint.unlink()


@pytest.mark.parametrize('classes,match', [
    (('person', 'lorry'), r'2 class names in metainfo.classes, but only 1 of them are category '
                          r'names of the json'),
    (('person', 'person'), r"names \['person'\] more than once"),
])
def test_bad_class_names_stop_before_the_first_step(tmp_path, synthetic_checkpoint, classes,
                                                    match):
    sys.path[:0] = [str(ROOT / 'tools')]
    import train as train_tool
    root = tmp_path / 'my_dataset'
    write_coco(root)
    with pytest.raises(DatasetError, match=match):
        train_tool.main([CONFIG, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                         *options(root, synthetic_checkpoint, classes)])
    assert not list((tmp_path / 'work').glob('*.pth'))
