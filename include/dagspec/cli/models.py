"""`dagspec models`: the registered versions of a model with their metrics, and rolling the champion back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from dagspec.cli.common import cli_resolver, err, out
from dagspec.cli.tables import fitting_table

if TYPE_CHECKING:
    from dagspec.ml.registry import Registry

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Models in the registry (MLflow).")


def _registry() -> Registry:
    from dagspec.ml.registry import Registry

    return Registry.open(cli_resolver())


@app.command("list")
def list_versions(model: str = typer.Argument(..., help="Registered model name, e.g. orders_lost.")) -> None:
    """Every version with its holdout metrics, its alias (champion, canary), its latest decision (promoted,
    rejected, canary, rolled_back), when it was taken and why, with the numbers."""
    versions = _registry().versions(model)
    if not versions:
        err.print(f"[red]no versions of model {model!r} in the registry[/]")
        raise typer.Exit(1)
    names = [m for m in ("roc_auc", "pr_auc", "f1", "log_loss", "rmse", "mae", "r2")
             if any(m in v["metrics"] for v in versions)]
    table = fitting_table("version", *names, "alias", "decision", "window end", "trained (UTC)", "decided (UTC)", "why",
                          right=tuple(names), title=f"{model} (★ champion)")
    for v in versions:
        tags = v["tags"]
        window_end = tags.get("dagspec.run_key", "").split("/")[-1][:10]
        alias = "champion" if v["champion"] else "canary" if v["canary"] else "-"
        when = tags.get("dagspec.canary.decided_at") or tags.get("dagspec.decided_at") or "-"
        table.add_row(
            f"{v['version']} ★" if v["champion"] else v["version"],
            *(f"{v['metrics'][m]:.4f}" if m in v["metrics"] else "-" for m in names),
            alias, tags.get("dagspec.decision", "-"), window_end,
            datetime.fromtimestamp(v["created"] / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M"),
            when.replace("T", " ").removesuffix("Z")[:16], tags.get("dagspec.canary.reasons") or tags.get("dagspec.reasons", "-"),
        )
    out.print(table)


@app.command()
def rollback(
    model: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="The version that becomes the champion again."),
) -> None:
    """Make VERSION the champion (scoring and drift use it from their next run)."""
    registry = _registry()
    known = {v["version"]: v for v in registry.versions(model)}
    if version not in known:
        err.print(f"[red]model {model!r} has no version {version!r}; versions: {', '.join(known) or 'none'}[/]")
        raise typer.Exit(1)
    current = registry.champion(model)
    previous = str(current.version) if current is not None else None
    if previous == version:
        err.print(f"version {version} of {model} is already the champion")
        return
    registry.set_champion(model, version)
    registry.tag_version(model, version, {"dagspec.rollback": f"champion v{previous} -> v{version} by `dagspec models "
                                                             f"rollback` at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"})
    out.print(f"[green]{model}: champion is now version {version}[/] (was {previous or 'none'})")
