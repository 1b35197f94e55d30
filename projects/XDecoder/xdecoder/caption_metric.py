"""COCO caption scores without the parts that need a network connection."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmdet.evaluation.metrics import COCOCaptionMetric
from mmdet.registry import METRICS

SCORERS = ('Bleu', 'METEOR', 'ROUGE_L', 'CIDEr', 'SPICE')


@METRICS.register_module()
class COCOCaptionEvalMetric(COCOCaptionMetric):
    """mmdet's ``COCOCaptionMetric`` (reads ``pred_caption`` and ``img_id`` of each sample), with
    a choice of scorers.

    ``pycocoevalcap``'s ``COCOEvalCap`` always runs SPICE, whose first use downloads Stanford
    CoreNLP; on a machine without internet the whole evaluation then fails after inference. The
    default here is every other scorer; ask for ``'SPICE'`` once CoreNLP is installed. Scores are
    the fractions ``COCOEvalCap`` reports (``Bleu_1..4``, ``METEOR``, ``ROUGE_L``, ``CIDEr``),
    PTB-tokenized the same way. The PTB tokenizer and METEOR need Java.

    Args:
        ann_file: COCO-format ground truth (``images`` + ``annotations`` with ``caption``), e.g.
            ``coco_karpathy_test_gt.json``.
        scorers: subset of ``('Bleu', 'METEOR', 'ROUGE_L', 'CIDEr', 'SPICE')``.
    """

    def __init__(self, ann_file: str,
                 scorers: Sequence[str] = ('Bleu', 'METEOR', 'ROUGE_L', 'CIDEr'),
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(ann_file=ann_file, collect_device=collect_device, prefix=prefix)
        unknown = set(scorers) - set(SCORERS)
        if unknown:
            raise ValueError(f'Unknown caption scorers {sorted(unknown)}; choose from {SCORERS}.')
        # Found out now rather than after a full pass over the dataset.
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'Caption ground truth {ann_file} not found; download coco_karpathy_test_gt.json '
                '(see "Datasets" in README.md) or set test_evaluator.ann_file.')
        if 'SPICE' in scorers:
            from pycocoevalcap.spice import get_stanford_models as spice_models
            jar = osp.join(osp.dirname(spice_models.__file__), spice_models.SPICELIB,
                           spice_models.JAR + '.jar')
            if not osp.isfile(jar):
                raise FileNotFoundError(
                    f'SPICE needs Stanford CoreNLP at {jar}; run `python -m '
                    'pycocoevalcap.spice.get_stanford_models` once with internet access, or '
                    "drop 'SPICE' from scorers.")
        self.scorers = tuple(scorers)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
        from pycocotools.coco import COCO

        coco = COCO(self.ann_file)
        predictions = {}
        for r in results:  # distributed samplers may repeat an image
            predictions.setdefault(r['image_id'], r['caption'])
        unknown = sorted(set(predictions) - set(coco.imgToAnns))
        if unknown:
            raise KeyError(f'{len(unknown)} predicted images (e.g. {unknown[:3]}) have no caption '
                           f'in {self.ann_file}; does it belong to the evaluated split?')
        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({i: coco.imgToAnns[i] for i in predictions})
        res = tokenizer.tokenize({i: [dict(caption=c)] for i, c in predictions.items()})
        build = dict(Bleu=lambda: (Bleu(4), [f'Bleu_{n}' for n in range(1, 5)]),
                     METEOR=lambda: (Meteor(), ['METEOR']),
                     ROUGE_L=lambda: (Rouge(), ['ROUGE_L']),
                     CIDEr=lambda: (Cider(), ['CIDEr']))
        if 'SPICE' in self.scorers:
            from pycocoevalcap.spice.spice import Spice
            build['SPICE'] = lambda: (Spice(), ['SPICE'])
        metrics = {}
        for name in self.scorers:
            scorer, keys = build[name]()
            score, _ = scorer.compute_score(gts, res)
            scores = score if isinstance(score, list) else [score]
            metrics.update({k: float(s) for k, s in zip(keys, scores)})
        return metrics
