"""Run X-Decoder on an image (or a folder of images) and save what it predicts.

    python demo/image_demo.py [IMAGE] CONFIG --weights CKPT [--task TASK] [--texts ...]
        [--stuff-texts ...] [--out-dir DIR] [--device cpu|cuda] [--scale N] [--show]

Without IMAGE it runs on scikit-image's bundled rocket photo (no download). Without --texts the
segmentation tasks use the config dataset's classes (ADE20K-150 for the ADE20K configs):

    python demo/image_demo.py projects/XDecoder/configs/xdecoder-tiny_zeroshot_semseg.py \\
        --weights xdecoder_focalt_best_openseg.pt

--texts takes several words (``--texts sky tree "street light"``) or one "a.b.c" string; for
referring segmentation, referring captioning and retrieval they are phrases. Each image gets a
folder under --out-dir (default: a fresh outputs/<task>_<time>/); existing folders are never
written into. The file layout is in projects/XDecoder/xdecoder/results.py.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from projects.XDecoder.xdecoder.errors import XDecoderInputError  # noqa: E402
from projects.XDecoder.xdecoder.inferencer import XDecoderInferencer  # noqa: E402
from projects.XDecoder.xdecoder.tasks import TASKS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='X-Decoder demo: every task on an image')
    parser.add_argument('inputs', nargs='?',
                        help="image file or folder (default: scikit-image's rocket photo)")
    parser.add_argument('config', help='config file, or a name in projects/XDecoder/configs')
    parser.add_argument('--weights', required=True,
                        help='checkpoint file, e.g. xdecoder_focalt_best_openseg.pt (README '
                             '"Checkpoints" says where to download it)')
    parser.add_argument('--task', choices=list(TASKS), help="default: the config's model.task")
    parser.add_argument('--texts', nargs='+',
                        help='class names (things for panoptic) or phrases; words or "a.b.c"')
    parser.add_argument('--stuff-texts', nargs='+', help='stuff class names (panoptic, instance)')
    parser.add_argument('--out-dir', help='where to save (default: outputs/<task>_<time>)')
    parser.add_argument('--device', help='cpu, cuda, cuda:1 ... (default: cuda if available)')
    parser.add_argument('--scale', type=int, help="short side instead of the task's default")
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'],
                        help='inference precision (default fp32): bf16 on CPU or GPU, fp16 on GPU')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='instances below this score are not drawn')
    parser.add_argument('--show', action='store_true', help='also show the drawings in a window')
    return parser.parse_args(argv)


def _texts(words):
    """One word stays a string, so that "a.b.c" splits; several are a list of names."""
    if not words:
        return None
    return words[0] if len(words) == 1 else list(words)


def main(argv=None) -> dict:
    args = parse_args(argv)
    inputs = args.inputs
    if inputs is None:
        import skimage.data
        inputs = osp.join(skimage.data.data_dir, 'rocket.jpg')
    inferencer = XDecoderInferencer(args.config, weights=args.weights, device=args.device,
                                    precision=args.precision)
    task = args.task or inferencer.default_task
    out_dir = args.out_dir or osp.join('outputs', f'{task}_{time.strftime("%Y%m%d_%H%M%S")}')
    result = inferencer(inputs, texts=_texts(args.texts), task=task,
                        stuff_texts=_texts(args.stuff_texts), batch_size=args.batch_size,
                        out_dir=out_dir, show=args.show, scale=args.scale,
                        pred_score_thr=args.pred_score_thr)
    print(f'{task}: saved {len(result["predictions"])} image(s) under {out_dir}')
    for pred in result['predictions']:
        line = f'  {pred["out_dir"]}'
        if 'caption' in pred:
            line += f'  caption: {pred["caption"]["text"]!r}'
        print(line)
    if 'retrieval' in result:
        print(f'  {osp.join(out_dir, "retrieval.json")}  (probability per image, input order)')
    return result


if __name__ == '__main__':
    try:
        main()
    # Bad input (a missing or wrong checkpoint, an unreadable image, an existing output folder,
    # an empty vocabulary): the message says what to do, a traceback would bury it.
    except (XDecoderInputError, FileNotFoundError, FileExistsError, ValueError) as e:
        sys.exit(f'error: {e}')
