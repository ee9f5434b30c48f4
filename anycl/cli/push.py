"""``anycl push``: upload a saved model to a Hugging Face Hub repository (anycl's folder, or an export of it)."""

from __future__ import annotations

from typing import List

from .common import load_model


def run(args, extra: List[str]) -> int:
    model = load_model(args.model)
    language = args.language.split(",") if args.language and "," in args.language else args.language
    url = model.push_to_hub(
        args.repo_id,
        format=args.format,
        private=True if args.private else None,
        token=args.token,
        commit_message=args.commit_message,
        revision=args.revision,
        create_pr=args.create_pr,
        license=args.license,
        language=language,
        **({"modality": args.modality} if args.modality else {}),
    )
    print(f"pushed {args.model} to {args.repo_id} as {args.format}: {url}")
    return 0


def add_parser(sub) -> None:
    """The ``push`` command."""
    p = sub.add_parser(
        "push",
        help="upload a saved model to the Hugging Face Hub",
        description="Upload a saved model (anycl's folder, or an export of it) to a Hub repository; the token is "
        "--token, else HF_TOKEN or `hf auth login`'s.",
    )
    p.add_argument("model", help="the model folder (or the output folder of `anycl fit`)")
    p.add_argument("repo_id", help="the repository, 'user/name' or 'org/name' (created when missing)")
    p.add_argument("--format", default="anycl", help="anycl (default), sentence-transformers or onnx")
    p.add_argument("--modality", help="the tower to export (formats that write one tower)")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--token", help="a Hub token (default: HF_TOKEN or the saved login)")
    p.add_argument("--license", help="the card's license, e.g. apache-2.0")
    p.add_argument("--language", help="the card's language code(s), comma-separated")
    p.add_argument("--commit-message", dest="commit_message")
    p.add_argument("--revision", help="the branch to push to")
    p.add_argument("--create-pr", dest="create_pr", action="store_true", help="open a pull request instead")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)
