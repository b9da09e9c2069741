"""Save-time checks on a function endpoint's handler source: size, syntax and a top-level `def handler(payload)`."""

from __future__ import annotations

import ast

from app.errors import invalid

MAX_SOURCE_BYTES = 64 * 1024


def check_handler_source(source: str, field: str) -> None:
    """Raise a 422 naming `field` unless `source` compiles and defines `handler` taking one positional argument."""
    if not isinstance(source, str) or not source.strip():
        raise invalid(field, "must be Python source defining handler(payload)")
    size = len(source.encode("utf-8"))
    if size > MAX_SOURCE_BYTES:
        raise invalid(field, f"is {size} bytes; the limit is {MAX_SOURCE_BYTES} bytes")
    try:
        tree = ast.parse(source, filename="<handler>")
        compile(tree, "<handler>", "exec")
    except SyntaxError as exc:
        raise invalid(field, f"syntax error on line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:  # null bytes in the source
        raise invalid(field, f"is not valid Python source: {exc}") from None
    handlers = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "handler"]
    if not handlers:
        if any(isinstance(node, ast.AsyncFunctionDef) and node.name == "handler" for node in tree.body):
            raise invalid(field, "handler must be a plain def, not async def")
        raise invalid(field, "must define a top-level function handler(payload)")
    if not _takes_one_argument(handlers[-1].args):
        raise invalid(field, "handler must take exactly one argument: handler(payload)")


def _takes_one_argument(args: ast.arguments) -> bool:
    """True when handler(payload) is a valid call: one positional parameter, or *args, and no required keywords."""
    positional = args.posonlyargs + args.args
    required = len(positional) - len(args.defaults)
    if required > 1 or any(default is None for default in args.kw_defaults):
        return False
    return len(positional) >= 1 or args.vararg is not None
