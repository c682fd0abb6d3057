"""``thrifty train``: train and export a policy (needs ``pip install 'thrifty[train]'``).

The flags are generated from :class:`thrifty.training.args.Args`, so the dataclass stays the
one place where a setting, its default and its documentation live.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import inspect
import shlex
import sys


def _field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (attribute docstrings are not kept at run
    time, so they are read from the source)."""
    tree = ast.parse(inspect.getsource(cls))
    definition = tree.body[0]
    assert isinstance(definition, ast.ClassDef), "the source of a class starts with its definition"
    body = definition.body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train the RL policy with RLlib and export it to policies/<name>/",
        description="Train the placement and sizing policies with RLlib PPO on the trace-driven simulator "
                    "(behaviour-cloned from the heuristic first), then export them for numpy serving.",
    )
    from thrifty.training.args import Args  # imports neither ray, torch nor gymnasium

    docs = _field_docs(Args)
    for field in dataclasses.fields(Args):
        kind = _bool if field.type in (bool, "bool") else type(field.default)
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, type=kind,
                            default=field.default, help=f"{docs.get(field.name, '')} (default: {field.default!r})")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    missing = [name for name in ("ray", "torch") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"thrifty train: {', '.join(missing)} not installed; install the training extra: "
              "pip install 'thrifty[train]'", file=sys.stderr)
        return 2
    from thrifty.training.args import Args
    from thrifty.training.train import main

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Args)}
    try:
        train_args = Args(**values)
    except ValueError as error:
        print(f"thrifty train: {error}", file=sys.stderr)
        return 2
    main(train_args, command=" ".join(shlex.quote(a) for a in ["thrifty", *sys.argv[1:]]))
    return 0
