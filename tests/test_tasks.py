"""The task table (tasks.py) and how a task travels: texts -> sample metainfo -> the model."""
import json
import types

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from xdecoder_test_utils import CONFIGS

from projects.XDecoder.xdecoder.inferencer import XDecoderInferencer
from projects.XDecoder.xdecoder.results import PARTS
from projects.XDecoder.xdecoder.tasks import TASKS, get_task, texts_to_metainfo
from projects.XDecoder.xdecoder.xdecoder import XDecoder


def test_every_task_has_its_post_processing_and_result_parts():
    for name, task in TASKS.items():
        assert callable(getattr(XDecoder, '_predict_' + name.replace('-', '_'))), name
        assert set(task.results) <= set(PARTS), name
    with pytest.raises(ValueError, match="Unknown task 'depth'; choose one of"):
        get_task('depth')


def test_texts_become_metainfo_in_the_datasets_convention():
    semantic, panoptic = TASKS['semantic'], TASKS['panoptic']
    assert texts_to_metainfo(semantic, ' sky . tree.') == dict(text=['sky', 'tree'])
    assert texts_to_metainfo(panoptic, ['person', 'car'], 'sky.road') == dict(
        text=['person', 'car'], stuff_text=['sky', 'road'])
    dataset = dict(classes=['a', 'b', 'c'], thing_classes=['a'], stuff_classes=['b', 'c'])
    assert texts_to_metainfo(semantic, dataset_classes=dataset) == dict(text=['a', 'b', 'c'])
    assert texts_to_metainfo(panoptic, dataset_classes=dataset) == dict(text=['a'],
                                                                        stuff_text=['b', 'c'])
    assert texts_to_metainfo(TASKS['referring'], 'the red car.the sky') == dict(
        text=['the red car', 'the sky'])
    assert texts_to_metainfo(TASKS['caption']) == {}
    with pytest.warns(UserWarning, match='caption ignores texts'):
        texts_to_metainfo(TASKS['caption'], 'a dog')


@pytest.mark.parametrize('task, texts, stuff, message', [
    ('semantic', ' . ', None, 'vocabulary is empty'),
    ('instance', ['sky', 'tree'], ['sky'], 'duplicate class names'),
    ('semantic', [f'name {i}' for i in range(256)], None, 'labels 0..254'),
    ('referring', None, None, 'needs non-empty phrases'),
    ('ref-caption', ['a cat', 'a dog'], None, 'takes one phrase'),
    ('retrieval', ['a cat', 'a cat'], None, 'Duplicate retrieval texts'),
])
def test_bad_texts_are_named(task, texts, stuff, message):
    with pytest.raises(ValueError, match=message):
        texts_to_metainfo(TASKS[task], texts, stuff)


def test_the_task_travels_with_the_samples():
    model = types.SimpleNamespace(task='semantic')  # task_of reads only the fallback
    assert XDecoder.task_of(model, [DetDataSample()]).name == 'semantic'
    assert XDecoder.task_of(model, [DetDataSample(metainfo=dict(task='caption'))]).name == \
        'caption'
    with pytest.raises(ValueError, match='One task per batch'):
        XDecoder.task_of(model, [DetDataSample(metainfo=dict(task='caption')), DetDataSample()])


def test_unknown_test_cfg_keys_are_refused():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(str(CONFIGS / 'xdecoder-tiny_zeroshot_semseg.py'))
    init_default_scope('mmdet')
    cfg.model.test_cfg = dict(instance_thing_onyl=False)
    with torch.device('meta'), pytest.raises(ValueError, match=r"\['instance_thing_onyl'\]"):
        MODELS.build(cfg.model)


def test_inferencer_leaves_the_model_and_its_test_cfg_alone(synthetic_checkpoint, parity_dir):
    """A call's task and vocabulary reach the model through the samples only, so a user's
    test_cfg holds: instance_thing_only=False keeps the stuff names' detections."""
    inferencer = XDecoderInferencer(weights=str(synthetic_checkpoint), device='cpu',
                                    test_cfg=dict(instance_thing_only=False))
    model = inferencer.model
    test_cfg = dict(model.test_cfg)
    names = json.loads((parity_dir / 'vocabularies.json').read_text())['panoptic_6']
    things, stuff = names[:3], names[3:]
    result = inferencer(str(parity_dir / 'inputs' / 'input_224.png'), texts=things,
                        stuff_texts=stuff, task='instance', scale=64)
    labels = result['predictions'][0]['instances']['labels']
    assert len(labels) == 100 and labels.max() >= len(things)  # stuff detections kept
    assert (model.task, model.test_cfg) == ('semantic', test_cfg)
