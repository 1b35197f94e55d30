"""The X-Decoder detector: one network, every task.

image -> data preprocessor -> backbone -> pixel decoder -> decoder (generic / grounding /
captioning mode) -> per-task post-processing (``postprocess.py``) -> data samples that mmdet's
metrics and visualizers read. Text (class names, phrases) is embedded by the text encoder, which
caches class embeddings per vocabulary. Which task runs is the samples' ``task`` (``tasks.py``).
"""
import contextlib
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList
from mmengine.structures import InstanceData, PixelData
from mmseg.structures import SegDataSample
from torch import Tensor, nn

from . import postprocess
from .checkpoint import official_checkpoint_pre_hook
from .decoder import DecoderOutput
from .layers import PRECISIONS, autocast_for
from .segmentation_loss import padded_masks, segmentation_targets
from .tasks import TRAINABLE_TASKS, TaskSpec, get_task, parse_texts
from .text_encoder import BACKGROUND
from .tokenizer import SOT_ID
from .train_text import random_template_class_embeddings


@MODELS.register_module()
class XDecoder(BaseDetector):
    """X-Decoder (Zou et al., CVPR 2023).

    Args:
        backbone, pixel_decoder, decoder, text_encoder: configs of the four parts.
        task: the task of samples whose metainfo names none (dataset samples), one of
            ``tasks.TASKS``; a sample's ``task`` metainfo takes precedence.
        backbone_dim, dim_proj: shape of ``backbone_proj`` (image-text retrieval ensemble).
        test_cfg: post-processing options, see ``DEFAULT_TEST_CFG``.
        criterion: the training losses, ``{branch: loss config}`` with the branches
            ``segmentation`` (``XDecoderSegLoss``), ``grounding`` (``XDecoderGroundingLoss``),
            ``captioning`` (``XDecoderCaptionLoss``), ``retrieval`` (``XDecoderRetrievalLoss``);
            a batch trains the branches it has data for (see :meth:`loss`). None = the model
            can only predict.
        train_cfg: training options, see ``DEFAULT_TRAIN_CFG``.
        strict_checkpoint: refuse a checkpoint whose keys or shapes differ from the model's.

    The vocabulary of a sample is its ``text`` (class names; the things when ``stuff_text``
    holds the stuff names), as mmdet's datasets with ``return_classes=True`` send it; labels
    index ``text + stuff_text``. Referring phrases are ``text`` too.

    ``predict(inputs [B, 3, H, W], data_samples)`` fills each sample's ``fields`` of its task
    (``tasks.TASKS``): ``pred_sem_seg``, ``pred_instances``, ``pred_panoptic_seg``,
    ``pred_instances.masks`` of the phrases (referring), ``pred_caption``, or
    ``image_embedding`` / ``caption_embeddings`` / ``backbone_image_embedding`` (retrieval).
    """

    DEFAULT_TEST_CFG = dict(
        # The vocabulary of samples without 'text' (and 'stuff_text'): class names.
        classes=None,
        stuff_classes=None,
        # None = official argmax; a float reproduces the MMDetection port's use_thr_for_mc.
        semantic_score_thr=None,
        max_per_img=100,
        # Instance segmentation with stuff names: they compete for the queries, then their
        # detections are dropped (the official evaluation); False keeps them.
        instance_thing_only=True,
        object_mask_thr=0.8,
        overlap_thr=0.8,
        mask_thr=0.5,
        caption_steps=50,
        caption_cut_at_period=False,
        # The official retrieval evaluation: 0.5 * cos(global query) + 0.5 * cos(pooled res5).
        retrieval_ensemble=True,
        # Referring captioning restricts the caption queries' cross-attention to the grounded
        # region; False reproduces the official demo and the MMDetection port, whose region mask
        # never reaches the decoder (a caption of the whole image).
        ref_caption_use_region=True,
        # True for benchmark vocabularies with repeated names or a 'background' class.
        repeated_names=False,
        # Inference precision: 'fp32', 'bf16' (CPU or GPU) or 'fp16' (GPU). The network runs
        # under autocast; attention masks, class scores and post-processing stay fp32.
        precision='fp32',
    )

    DEFAULT_TRAIN_CFG = dict(
        # The official recipe trains the text encoder (its lr x0.1: the optimiser's
        # paramwise_cfg); True keeps it as loaded, and its class embeddings without gradients.
        freeze_text_encoder=True,
        # The class-name embeddings of the segmentation loss: 'random' = one prompt template
        # drawn per name at every step (the official training); 'mean' = the 81 templates'
        # mean that evaluation uses (cached, no gradient: needs the frozen text encoder).
        class_prompts='random',
        # The task of the joint training's segmentation stream (its samples name none; the
        # model's own task is what validation runs).
        segmentation_task='panoptic',
    )
    LOSS_BRANCHES = ('segmentation', 'grounding', 'captioning', 'retrieval')

    def __init__(self, backbone: Dict, pixel_decoder: Dict, decoder: Dict, text_encoder: Dict,
                 task: str = 'semantic', backbone_dim: int = 768, dim_proj: int = 512,
                 test_cfg: Optional[Dict] = None, train_cfg: Optional[Dict] = None,
                 criterion: Optional[Dict] = None, data_preprocessor: Optional[Dict] = None,
                 strict_checkpoint: bool = True, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.task = get_task(task).name
        unknown = sorted(set(test_cfg or {}) - set(self.DEFAULT_TEST_CFG))
        if unknown:
            raise ValueError(f'Unknown model.test_cfg keys {unknown}; the options are '
                             f'{sorted(self.DEFAULT_TEST_CFG)}.')
        self.backbone = MODELS.build(backbone)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.decoder = MODELS.build(decoder)
        self.text_encoder = MODELS.build(text_encoder)
        self.backbone_proj = nn.Parameter(torch.empty(backbone_dim, dim_proj))
        nn.init.trunc_normal_(self.backbone_proj, std=0.02)
        self.test_cfg = {**self.DEFAULT_TEST_CFG, **(test_cfg or {})}
        if self.test_cfg['precision'] not in PRECISIONS:
            raise ValueError(f"Unknown model.test_cfg.precision {self.test_cfg['precision']!r}; "
                             f'choose one of {sorted(PRECISIONS)}.')
        unknown = sorted(set(train_cfg or {}) - set(self.DEFAULT_TRAIN_CFG))
        if unknown:
            raise ValueError(f'Unknown model.train_cfg keys {unknown}; the options are '
                             f'{sorted(self.DEFAULT_TRAIN_CFG)}.')
        self.train_cfg = {**self.DEFAULT_TRAIN_CFG, **(train_cfg or {})}
        if self.train_cfg['class_prompts'] not in ('random', 'mean'):
            raise ValueError("model.train_cfg.class_prompts is 'random' or 'mean', got "
                             f"{self.train_cfg['class_prompts']!r}.")
        if self.train_cfg['class_prompts'] == 'mean' and \
                not self.train_cfg['freeze_text_encoder']:
            raise ValueError("model.train_cfg.class_prompts='mean' takes the cached evaluation "
                             'embeddings, which carry no gradient: it needs '
                             'freeze_text_encoder=True.')
        self.criterion = None
        if criterion is not None:
            unknown = sorted(set(criterion) - set(self.LOSS_BRANCHES))
            if unknown or not criterion:
                raise ValueError(f'model.criterion takes {{branch: loss config}} with branches '
                                 f'{self.LOSS_BRANCHES}; got {sorted(criterion)}.')
            self.criterion = nn.ModuleDict(
                {name: MODELS.build(cfg) for name, cfg in criterion.items()})
            if self.train_cfg['freeze_text_encoder']:
                self.text_encoder.requires_grad_(False)
        self._register_load_state_dict_pre_hook(
            lambda *args: official_checkpoint_pre_hook(self, *args,
                                                       strict_keys=strict_checkpoint))

    # ------------------------------------------------------------------ features
    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """``(mask_features [B, C, H/4, W/4], multi_scale [/32, /16, /8])``."""
        return self.pixel_decoder(self.backbone(batch_inputs))

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList = None):
        return self.decoder(*self.extract_feat(batch_inputs))[-1]

    def task_of(self, batch_data_samples: SampleList,
                default: Optional[str] = None) -> TaskSpec:
        """The samples' task (their ``task`` metainfo, else ``default``, else ``self.task``);
        one per batch."""
        default = default or self.task
        names = {s.metainfo.get('task', default) for s in batch_data_samples} or {default}
        if len(names) > 1:
            raise ValueError(f'One task per batch, got {sorted(names)}.')
        return get_task(names.pop())

    # ------------------------------------------------------------------ training
    def loss(self, batch_inputs, batch_data_samples) -> Dict[str, Tensor]:
        """The losses of a batch, or of ``{stream: batch}`` in joint training (see
        ``joint_training.py``): the ``segmentation`` stream as its samples' task, else
        ``train_cfg.segmentation_task`` (panoptic), the ``image_text`` stream by captioning and
        retrieval.

        What a batch trains, by its task (the samples' ``task``, else ``model.task``):

        * semantic / instance / panoptic: ``segmentation`` on ``gt_sem_seg`` /
          ``gt_instances``, class logits against each image's vocabulary (``text`` +
          ``stuff_text``) embedded with one random prompt template per name; plus
          ``grounding`` on the samples' ``gt_grounding`` phrases when the criterion has it;
        * referring: ``grounding`` of the phrases in ``text`` against ``gt_instances.masks``
          (one per phrase, or one for all);
        * caption / retrieval: ``captioning`` / ``retrieval`` of one of each image's
          ``gt_caption``, drawn at random at every step.
        """
        if self.criterion is None:
            raise RuntimeError(
                'This model has no training loss: set model.criterion, e.g. '
                "dict(segmentation=dict(type='XDecoderSegLoss')) (see projects/XDecoder/"
                'configs/xdecoder-tiny_finetune_semseg_ade20k.py).')
        if isinstance(batch_inputs, dict):
            losses = {}
            for stream, inputs in batch_inputs.items():
                samples = batch_data_samples[stream]
                if stream == 'image_text':
                    branches = [b for b in ('captioning', 'retrieval') if b in self.criterion]
                    losses.update(self._image_text_losses(inputs, samples, branches))
                else:
                    task = self.task_of(samples, self.train_cfg['segmentation_task'])
                    if task.name not in TRAINABLE_TASKS:
                        raise ValueError(f'The joint training stream {stream!r} trains '
                                         f'segmentation ({TRAINABLE_TASKS}), not '
                                         f'{task.name!r}: set model.train_cfg.'
                                         'segmentation_task.')
                    losses.update(self._task_losses(inputs, samples, task))
            return losses
        return self._task_losses(batch_inputs, batch_data_samples)

    def _task_losses(self, inputs: Tensor, samples: SampleList,
                     task: Optional[TaskSpec] = None) -> Dict[str, Tensor]:
        task = task or self.task_of(samples)
        branch = {'caption': 'captioning', 'retrieval': 'retrieval',
                  'referring': 'grounding'}.get(task.name, 'segmentation')
        if task.name not in TRAINABLE_TASKS + ('caption', 'retrieval', 'referring'):
            raise NotImplementedError(f'Training is implemented for the {TRAINABLE_TASKS} '
                                      "and 'referring', 'caption', 'retrieval' tasks, not "
                                      f'{task.name!r}.')
        if branch not in self.criterion:
            raise ValueError(f'Task {task.name!r} trains the {branch!r} loss, which '
                             f'model.criterion lacks (it has {sorted(self.criterion)}).')
        if branch in ('captioning', 'retrieval'):
            return self._image_text_losses(inputs, samples, [branch])
        if branch == 'grounding':
            targets = [self._referring_target(s) for s in samples]
            return self._grounding_pass_losses(inputs, samples, targets, None)
        groundings = None
        if 'grounding' in self.criterion and any('gt_grounding' in s for s in samples):
            groundings = [self._grounding_target(s) for s in samples]
        return self._grounding_pass_losses(inputs, samples, groundings, task)

    def _text_context(self):
        """No gradients into a frozen text encoder (and no activations kept for them)."""
        return torch.no_grad() if self.train_cfg['freeze_text_encoder'] else \
            contextlib.nullcontext()

    def _grounding_pass_losses(self, inputs: Tensor, samples: SampleList,
                               groundings: Optional[List[InstanceData]],
                               task: Optional[TaskSpec]) -> Dict[str, Tensor]:
        """One decoder pass: the generic queries' segmentation losses (``task`` given) and the
        grounding queries' losses of ``groundings`` (per image: phrases, masks, groups)."""
        mask_features, multi_scale = self.extract_feat(inputs)
        losses = {}
        if groundings is None:
            predictions = self.decoder(mask_features, multi_scale)
        else:
            phrases = [list(g.metainfo['phrases']) for g in groundings]
            unique = list(dict.fromkeys(p for image in phrases for p in image))
            with self._text_context():
                text = self.text_encoder.encode(unique) if unique else None
            row = {p: i for i, p in enumerate(unique)}
            tokens, padding = self._grounding_tokens(text, row, phrases, mask_features)
            predictions = self.decoder.forward_grounding(mask_features, multi_scale, tokens,
                                                         padding)
            for g, image in zip(groundings, phrases):
                g.text_embeds = text['eot_feats'][[row[p] for p in image]] if image else \
                    mask_features.new_zeros(0, self.text_encoder.lang_proj.shape[1])
            losses.update(self.criterion['grounding'](
                [p.grounding_embeds for p in predictions],
                [p.grounding_masks for p in predictions], groundings,
                self.text_encoder.logit_scale))
        if task is not None:
            losses.update(self._segmentation_losses(predictions, samples, task))
        return losses

    @staticmethod
    def _grounding_tokens(text: Optional[Dict[str, Tensor]], row: Dict[str, int],
                          phrases: List[List[str]], like: Tensor) -> Tuple[Tensor, Tensor]:
        """Each image's distinct phrases' valid tokens (``text`` rows ``row[phrase]``),
        concatenated and padded across the batch: ``(T, B, C)`` and the padding ``[B, T]``
        (True = pad); ``like`` gives the width ``C`` and device when no image has a phrase."""
        per_image = []
        for image in phrases:
            rows = [row[p] for p in dict.fromkeys(image)]
            per_image.append(text['token_feats'][rows][text['attention_mask'][rows].bool()]
                             if rows else like.new_zeros(0, like.shape[1]))
        tokens = torch.nn.utils.rnn.pad_sequence(per_image)
        lengths = torch.tensor([len(t) for t in per_image], device=tokens.device)
        padding = torch.arange(tokens.shape[0], device=tokens.device)[None] >= lengths[:, None]
        return tokens, padding

    def _segmentation_losses(self, predictions: List[DecoderOutput], samples: SampleList,
                             task: TaskSpec) -> Dict[str, Tensor]:
        vocabularies = [self._vocabulary(s) for s in samples]
        if self.train_cfg['class_prompts'] == 'random':
            generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
            embeddings = {}
            with self._text_context():
                for names in vocabularies:
                    if tuple(names) not in embeddings:
                        embeddings[tuple(names)] = random_template_class_embeddings(
                            self.text_encoder, names, generator)

            def score(embeds, names):
                return self.text_encoder.compute_similarity(embeds, embeddings[tuple(names)])
        else:  # 'mean': the cached evaluation embeddings
            score = self.class_logits
        class_logits = [[score(embeds, names)
                         for embeds, names in zip(pred.class_embeds, vocabularies)]
                        for pred in predictions]
        targets = [segmentation_targets(s, task.name, len(names), self._thing_labels(s))
                   for s, names in zip(samples, vocabularies)]
        return self.criterion['segmentation'](
            class_logits, [pred.mask_logits for pred in predictions], targets)

    def _image_text_losses(self, inputs: Tensor, samples: SampleList,
                           branches: Sequence[str]) -> Dict[str, Tensor]:
        """Captioning (teacher forcing) and / or retrieval of one random caption per image."""
        captions = [self._random_caption(s) for s in samples]
        input_ids, attention_mask = self.text_encoder.tokenizer(captions)
        length = int(attention_mask.sum(1).max())
        input_ids = input_ids[:, :length].to(inputs.device)
        attention_mask = attention_mask[:, :length].to(inputs.device)
        with self._text_context():
            token_feats, eot_feats = self.text_encoder(input_ids)
        backbone_feats = self.backbone(inputs)
        mask_features, multi_scale = self.pixel_decoder(backbone_feats)
        losses = {}
        if 'captioning' in branches:
            predictions, features = self.decoder.forward_caption_teacher(
                mask_features, multi_scale, token_feats)
            losses.update(self.criterion['captioning'](
                input_ids, attention_mask, features=features,
                token_embedding=self.text_encoder.token_embedding))
        else:
            predictions = self.decoder(mask_features, multi_scale)
        if 'retrieval' in branches:
            losses.update(self.criterion['retrieval'](
                [p.global_embeds for p in predictions], eot_feats, self.text_encoder.logit_scale,
                backbone_feats[-1], self.backbone_proj))
        return losses

    @staticmethod
    def _random_caption(data_sample: DetDataSample) -> str:
        captions = data_sample.metainfo.get('gt_caption')
        captions = [captions] if isinstance(captions, str) else list(captions or [])
        if not captions or not all(isinstance(c, str) and c.strip() for c in captions):
            raise ValueError(
                f"Image {data_sample.metainfo.get('img_path')}: captioning and retrieval "
                f"training need its captions in the sample's 'gt_caption' (got {captions!r}); "
                "pack them with meta_keys=(..., 'gt_caption').")
        return captions[int(torch.randint(len(captions), ()))]

    def _referring_target(self, data_sample: DetDataSample) -> InstanceData:
        """The phrases of ``text`` and their masks (``gt_instances.masks``: one per phrase, or
        one that every phrase refers to, e.g. the sentences of one RefCOCO object)."""
        phrases = parse_texts(data_sample.metainfo.get('text'))
        # RefCOCO's samples carry masks without labels: the model's device.
        masks = padded_masks(data_sample.gt_instances.masks, data_sample,
                             self.backbone_proj.device)
        if not phrases:
            raise ValueError(f"Image {data_sample.metainfo.get('img_path')}: referring "
                             "training needs its phrases in the sample's 'text'.")
        if len(masks) == 1:
            masks, groups = masks.expand(len(phrases), -1, -1), [0] * len(phrases)
        elif len(masks) == len(phrases):
            groups = list(range(len(phrases)))
        else:
            raise ValueError(f"Image {data_sample.metainfo.get('img_path')}: {len(phrases)} "
                             f'phrases but {len(masks)} masks; give one mask per phrase or one '
                             'for all.')
        return InstanceData(masks=masks, group_ids=masks.new_tensor(groups, dtype=torch.long),
                            metainfo=dict(phrases=phrases, task='text'))

    @staticmethod
    def _grounding_target(data_sample: DetDataSample) -> InstanceData:
        """The sample's ``gt_grounding`` rows (``masks``, ``phrase_ids`` into the metainfo's
        ``grounding_text`` / ``grounding_groups``) as a grounding loss target."""
        meta = data_sample.metainfo
        grounding = data_sample.get('gt_grounding', InstanceData())
        ids = grounding.phrase_ids.tolist() if 'phrase_ids' in grounding else []
        texts, groups = meta.get('grounding_text', []), meta.get('grounding_groups', [])
        device = grounding.phrase_ids.device if ids else 'cpu'
        masks = padded_masks(grounding.masks, data_sample, device) if ids else torch.zeros(
            0, *meta['batch_input_shape'], dtype=torch.bool)
        return InstanceData(
            masks=masks, group_ids=torch.tensor([groups[i] for i in ids], dtype=torch.long,
                                                device=masks.device),
            metainfo=dict(phrases=[texts[i] for i in ids],
                          task=meta.get('grounding_task', 'text')))

    # ------------------------------------------------------------------ text helpers
    def class_logits(self, class_embeds: Tensor, names: Sequence[str]) -> Tensor:
        """``exp(logit_scale) * cos`` against the names' embeddings + background: [..., K+1].

        With ``test_cfg['repeated_names']`` a benchmark's vocabulary is taken as written: a
        repeated name (the official ADE20K-full vocabulary repeats nine) shares one embedding,
        and a class named 'background' (PASCAL VOC 21) shares the model's background one.
        Otherwise such names are refused."""
        if not self.test_cfg['repeated_names']:
            return self.text_encoder.compute_similarity(
                class_embeds, self.text_encoder.class_embeddings(names))
        unique = [n for n in dict.fromkeys(names) if n != BACKGROUND]
        row = {n: i for i, n in enumerate(unique + [BACKGROUND])}
        rows = [row[n] for n in names] + [len(unique)]
        embeddings = self.text_encoder.class_embeddings(unique)[rows]
        return self.text_encoder.compute_similarity(class_embeds, embeddings)

    def _names(self, data_sample: DetDataSample):
        """``(things, stuff)`` of the sample: ``text`` and ``stuff_text``, else
        ``test_cfg.classes`` and ``test_cfg.stuff_classes``."""
        meta = data_sample.metainfo
        things = meta.get('text', self.test_cfg['classes'])
        if things is None:
            raise ValueError(
                'No vocabulary: set return_classes=True on the dataset (mmdet puts the class '
                "names into each sample's 'text'), or model.test_cfg.classes.")
        stuff = meta.get('stuff_text') if 'text' in meta else self.test_cfg['stuff_classes']
        things = [things] if isinstance(things, str) else list(things)
        return things, list(stuff or ())

    def _vocabulary(self, data_sample: DetDataSample) -> List[str]:
        """The names the labels index: the things, then the stuff."""
        things, stuff = self._names(data_sample)
        return things + stuff

    def _thing_labels(self, data_sample: DetDataSample) -> List[int]:
        """Labels of the things: the first ``len(text)``."""
        return list(range(len(self._names(data_sample)[0])))

    @staticmethod
    def _resize_sizes(data_sample: DetDataSample) -> tuple:
        """``(padded_hw, img_hw, ori_hw)`` of the sample, what mask logits are resized by."""
        meta = data_sample.metainfo
        return meta['batch_input_shape'], meta['img_shape'][:2], meta['ori_shape'][:2]

    def _to_original(self, mask_logits: Tensor, data_sample: DetDataSample) -> Tensor:
        return postprocess.resize_to_original(mask_logits, *self._resize_sizes(data_sample))

    # ------------------------------------------------------------------ tasks
    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        with autocast_for(self.test_cfg['precision'], batch_inputs.device):
            return self._predict(self.task_of(batch_data_samples), batch_inputs,
                                 batch_data_samples)

    def _predict(self, task: TaskSpec, batch_inputs: Tensor,
                 batch_data_samples: SampleList) -> SampleList:
        backbone_feats = self.backbone(batch_inputs)
        mask_features, multi_scale = self.pixel_decoder(backbone_feats)
        predict_one = getattr(self, '_predict_' + task.name.replace('-', '_'))
        if task.generic_pass:
            pred = self.decoder(mask_features, multi_scale)[-1]
            for i, data_sample in enumerate(batch_data_samples):
                predict_one(DecoderOutput(*(None if t is None else t[i] for t in pred)),
                            data_sample)
            if 'backbone_image_embedding' in task.fields and self.test_cfg['retrieval_ensemble']:
                # The ensemble reuses res5, so the backbone runs once.
                self._predict_retrieval_backbone(backbone_feats[-1], batch_data_samples)
            return batch_data_samples
        # Grounding and captioning run per image: their extra queries differ per image, and the
        # official model was evaluated one image at a time.
        for i, data_sample in enumerate(batch_data_samples):
            predict_one(mask_features[i:i + 1], [m[i:i + 1] for m in multi_scale], data_sample)
        return batch_data_samples

    def _predict_semantic(self, pred: DecoderOutput, data_sample: DetDataSample) -> None:
        logits = self.class_logits(pred.class_embeds, self._vocabulary(data_sample))
        # Resized to the original size a few rows at a time, never whole.
        _, labels = postprocess.semantic_inference(
            logits, pred.mask_logits, score_thr=self.test_cfg['semantic_score_thr'],
            with_scores=False, resize_to=self._resize_sizes(data_sample))
        # mmseg's samples and IoUMetric keep label maps under 'data', mmdet's under 'sem_seg'.
        key = 'data' if isinstance(data_sample, SegDataSample) else 'sem_seg'
        data_sample.pred_sem_seg = PixelData(**{key: labels[None]})

    def _predict_instance(self, pred: DecoderOutput, data_sample: DetDataSample) -> None:
        logits = self.class_logits(pred.class_embeds, self._vocabulary(data_sample))
        masks = self._to_original(pred.mask_logits, data_sample)
        things = self._thing_labels(data_sample) if self.test_cfg['instance_thing_only'] else None
        result = postprocess.instance_inference(logits, masks, self.test_cfg['max_per_img'],
                                                thing_labels=things)
        # The model predicts no boxes; mmdet's structures and metrics expect the field.
        data_sample.pred_instances = InstanceData(
            labels=result['labels'], scores=result['scores'], masks=result['masks'],
            bboxes=masks.new_zeros(len(result['labels']), 4))

    def _predict_panoptic(self, pred: DecoderOutput, data_sample: DetDataSample) -> None:
        names = self._vocabulary(data_sample)
        logits = self.class_logits(pred.class_embeds, names)
        masks = self._to_original(pred.mask_logits, data_sample)
        seg_ids, segments = postprocess.panoptic_inference(
            logits, masks, self._thing_labels(data_sample),
            object_mask_thr=self.test_cfg['object_mask_thr'],
            overlap_thr=self.test_cfg['overlap_thr'])
        # mmdet's encoding for its metric and visualizer; segment ids 1..N (0 = void) with their
        # descriptions for people and files.
        data_sample.pred_panoptic_seg = PixelData(
            sem_seg=postprocess.panoptic_to_mmdet(seg_ids, segments, len(names))[None])
        data_sample.panoptic_segment_ids = seg_ids
        data_sample.set_metainfo(dict(panoptic_segments=segments))

    def _predict_retrieval(self, pred: DecoderOutput, data_sample: DetDataSample) -> None:
        """``image_embedding [D]`` (the global query) and, when the sample carries its captions
        (``gt_caption``), their EOT embeddings ``caption_embeddings [C, D]`` for
        ``RetrievalRecallMetric``; both un-normalised."""
        data_sample.image_embedding = pred.global_embeds
        captions = data_sample.metainfo.get('gt_caption')
        if captions is not None:
            captions = [captions] if isinstance(captions, str) else list(captions)
            data_sample.caption_embeddings = self.text_encoder.encode(captions)['eot_feats']

    def _predict_retrieval_backbone(self, res5: Tensor, batch_data_samples: SampleList) -> None:
        """The official retrieval ensemble's second image embedding, ``backbone_image_embedding
        [D]`` = avgpool(res5 [B, C5, h, w]) @ backbone_proj."""
        pooled = res5.mean(dim=(2, 3)) @ self.backbone_proj
        for data_sample, embedding in zip(batch_data_samples, pooled):
            data_sample.backbone_image_embedding = embedding

    def _predict_referring(self, mask_features: Tensor, multi_scale: List[Tensor],
                           data_sample: DetDataSample) -> None:
        """All phrases of the image go through one grounding pass, as in the official model."""
        phrases = parse_texts(data_sample.metainfo.get('text'))
        if not phrases:
            raise ValueError('Referring segmentation needs at least one phrase in the '
                             "sample's 'text' (a list of phrases or 'a.b.c').")
        text = self.text_encoder.encode(phrases)
        tokens = text['token_feats'][text['attention_mask'].bool()]  # valid tokens, in order
        pred = self.decoder.forward_grounding(mask_features, multi_scale, tokens[:, None])[-1]
        query_ids, logits = postprocess.referring_selection(
            pred.grounding_embeds[0], text['eot_feats'], self.text_encoder.logit_scale)
        masks = self._to_original(pred.grounding_masks[0][query_ids], data_sample).sigmoid()
        binary = masks > self.test_cfg['mask_thr']
        # Score as the MMDetection port reports it: phrase-query probability x mean mask prob.
        probs = logits.softmax(-1).gather(1, query_ids[:, None])[:, 0]
        mean_prob = (masks * binary).flatten(1).sum(1) / binary.flatten(1).sum(1).clamp(min=1)
        data_sample.pred_instances = InstanceData(
            masks=binary, scores=probs * mean_prob, labels=torch.arange(len(phrases)),
            query_ids=query_ids, bboxes=masks.new_zeros(len(phrases), 4))

    def _predict_caption(self, mask_features: Tensor, multi_scale: List[Tensor],
                         data_sample: DetDataSample,
                         region_mask: Optional[Tensor] = None) -> None:
        tokens = self.decoder.forward_caption(
            mask_features, multi_scale, token_features=self.text_encoder.token_features,
            token_embedding=self.text_encoder.token_embedding, start_id=SOT_ID,
            num_steps=self.test_cfg['caption_steps'], region_mask=region_mask)[0]
        data_sample.pred_caption = postprocess.caption_text(
            tokens, self.text_encoder.tokenizer.decode,
            cut_at_period=self.test_cfg['caption_cut_at_period'])
        data_sample.caption_token_ids = tokens

    def _predict_ref_caption(self, mask_features: Tensor, multi_scale: List[Tensor],
                             data_sample: DetDataSample) -> None:
        """Ground the phrase, then caption the grounded region."""
        self._predict_referring(mask_features, multi_scale, data_sample)
        region = None
        if self.test_cfg['ref_caption_use_region']:
            region = self._to_input_resolution(data_sample.pred_instances.masks[:1].float(),
                                               data_sample, mask_features)
        self._predict_caption(mask_features, multi_scale, data_sample, region_mask=region)

    def _to_input_resolution(self, masks: Tensor, data_sample: DetDataSample,
                             mask_features: Tensor) -> Tensor:
        """Masks at the original image size -> [N, H_pad, W_pad] on the network input grid."""
        h, w = data_sample.metainfo['img_shape'][:2]
        resized = torch.nn.functional.interpolate(masks[:, None], size=(h, w), mode='nearest')
        pad_h, pad_w = data_sample.metainfo['batch_input_shape']
        return torch.nn.functional.pad(resized[:, 0], (0, pad_w - w, 0, pad_h - h)).to(
            mask_features.device) > 0.5
