"""``cnnkit train``: flags are generated from :class:`cnnkit.config.TrainConfig`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from typing import Any

from ..config import TrainConfig, field_type
from ._args import add_command, add_run_folder_flags, float_in, int_in


def add_config_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = (), helps: dict[str, str] | None = None) -> None:
    """One flag per config field; defaults stay None so only given flags override the config file.

    ``helps``: a command's own help text for a field, where it treats the option differently.
    """
    for f in fields(TrainConfig):
        if f.name in skip or f.metadata["help"] == argparse.SUPPRESS:  # records cnnkit writes, not options
            continue
        flag = "--" + f.name.replace("_", "-")
        t = field_type(f)
        default = f.default if f.default is not MISSING else f.default_factory()
        # A None default is explained by the help text itself ("default: the model's ...").
        choices = f.metadata.get("choices")
        help_ = ((helps or {}).get(f.name, f.metadata["help"]) + (f" (default: {default})" if default is not None else "")
                 + (f"; choices: {', '.join(choices)}" if choices else ""))  # fmt: skip
        if t is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif t is dict:
            p.add_argument(flag, dest=f.name, default=None, metavar="YAML", help=help_ + ", e.g. '{hidden: [300, 100]}'")
        else:
            p.add_argument(flag, dest=f.name, type=_bounded_type(f, t), default=None,
                           metavar=f.metadata.get("metavar", f.name.upper()),
                           help=help_, choices=f.metadata.get("choices"))  # fmt: skip


def _bounded_type(f: Field, t: type) -> Callable[[str], Any]:
    """The argparse type of a config field: numbers checked against the field's bounds at parse time.

    ``TrainConfig.validate`` checks the same bounds for config files; here a bad flag becomes argparse's
    one-line usage error before anything is loaded. Exclusive upper bounds (``hi_open``) are left to
    ``validate``, which names the flag too.
    """
    m = f.metadata
    if t is int:
        parse = int_in(m.get("lo"), m.get("hi"))
    elif t is float:
        parse = float_in(m["lo_open"], m.get("hi"), lo_open=True) if "lo_open" in m else float_in(m.get("lo"), m.get("hi"))
    else:
        return str
    words = m.get("words", ())  # a number, or one of these words (--lr find)
    if not words:
        return parse

    def number_or_word(text: str) -> Any:
        if text.strip().lower() in words:
            return text.strip().lower()
        try:
            return parse(text)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e} (or {' or '.join(words)})") from None

    number_or_word.__name__ = parse.__name__
    return number_or_word


def registry_help(width: int = 79) -> str:
    """The optimisers, schedules and losses ``--optimizer``/``--scheduler``/``--loss`` accept, one line each."""
    import textwrap

    from ..registries import LOSSES, OPTIMIZERS, SCHEDULES  # filled by cnnkit.engine (and by users)

    sections = (("optimisers (--optimizer)", OPTIMIZERS),
                ("learning-rate schedules (--scheduler), after the --warmup-epochs ramp", SCHEDULES),
                ("losses (--loss)", LOSSES))  # fmt: skip
    col = max([len(e.name) for _, reg in sections for e in reg.entries()] + [12]) + 4
    out = []
    for title, reg in sections:
        out += ["", title + ":"] if out else [title + ":"]
        for e in reg.entries():
            text = e.help + (f"; default lr {e.meta['default_lr']:g}" if "default_lr" in e.meta else "")
            out += textwrap.wrap(text or "-", width, initial_indent=f"  {e.name:<{col - 2}}", subsequent_indent=" " * col)
    return "\n".join(out)


def given_overrides(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict:
    """The config fields given on the command line (``skip``: a command's own flags that share a field's name)."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig)
            if f.name not in skip and getattr(args, f.name, None) is not None}  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    # RawDescriptionHelpFormatter keeps the epilog's table as written.
    p = add_command(sub, "train", run, "train a model and record the run (default: LeNet-5 on scikit-learn's digits)",
                    "Train a model. Every option can also be set in --config FILE.yaml;\nflags override the file.",
                    epilog=registry_help(), formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--config", metavar="FILE", help="YAML file of options (keys as the flags, with _)")
    add_run_folder_flags(p)
    p.add_argument("--classes", metavar="A,B,...",
                   help="train on these classes only (names, or indices), relabelled 0..K-1; the same as "
                   "--data 'subset:DATA?classes=A,B,...'")  # fmt: skip
    add_config_flags(p)


def classes_data(classes: str, config: str | None, over: dict) -> str:
    """``--classes 0,1,2`` as the ``subset:`` dataset name it stands for, split as the run will be."""
    from ..config import TrainConfig, config_mapping
    from ..transfer import subset_spec

    opts = {**TrainConfig().to_dict(), **config_mapping(config), **over}
    names = [c.strip() for c in classes.split(",") if c.strip()]
    return subset_spec(str(opts["data"]), names, None, None, float(opts["val_split"]), float(opts["test_split"]),
                       int(opts["seed"]), opts.get("data_root"))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..engine import train

    over = given_overrides(args)
    if args.classes is not None:
        if args.resume:
            from ..errors import ConfigError

            raise ConfigError("--classes cannot change the data of a resumed run", hint="start a new run with --classes")
        over["data"] = classes_data(args.classes, args.config, over)
    if args.resume:
        result = train(resume=args.resume, quiet=args.quiet, **over)
    else:
        result = train(args.config, overwrite=args.overwrite, quiet=args.quiet, **over)
    if args.quiet:
        print(f"test accuracy {result.test.get('acc', float('nan')):.2%}  run {result.run_dir}")
    return 0
