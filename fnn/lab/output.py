"""Writing a study to disk: ``report.md`` (``fnn/lab/report.py``), ``runs.csv``, ``study.json``, ``manifest.json``
and ``figures/*.png`` (``fnn/lab/figures.py``), into a folder that holds nothing else.

Nothing is lost: a folder holding any file that is not a lab report's is refused, and a previous report is replaced
only when asked (``overwrite=True``; ``fnn lab --overwrite``). ``check_out_dir`` runs the same check before a long
study starts.
"""
from __future__ import annotations

import csv
import json
import os
import re

from fnn.lab import figures as figs
from fnn.lab.report import DEFAULT_TAUS, markdown, performance_profiles, runs_table

__all__ = ["OUTPUTS", "check_out_dir", "write", "write_figures"]

OUTPUTS = ("report.md", "runs.csv", "study.json", "manifest.json")  # plus figures/*.png


def _write_csv(rows, path):
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: "" if row.get(k) is None else row[k] for k in fields} for row in rows)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _foreign_file(out_dir):
    """The first file under ``out_dir`` that ``write`` did not make (its outputs, ``figures/*.png``), or None."""
    for root, _, files in os.walk(out_dir):
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(root, name), out_dir)
            parts = rel.split(os.sep)
            if not (parts[0] in OUTPUTS and len(parts) == 1 or len(parts) == 2 and parts[0] == "figures"
                    and name.endswith(".png")):
                return rel
    return None


def write_figures(study, folder, *, objectives=None, bounds=None, taus=DEFAULT_TAUS) -> dict:
    """Every figure of the study as ``folder/<kind>_<workload>.png`` and ``folder/profiles.png``.

    Kinds: ``curves`` (``figures.loss_curves``), ``km`` (``time_to_target_curves``), ``tuning``, ``lr`` (when a rule
    tunes ``learning_rate``), ``race`` (workloads with paths; ``objectives[workload]`` and ``bounds[workload]``
    draw the contours). Returns ``{name: path}``.
    """
    objectives, bounds, out = objectives or {}, bounds or {}, {}
    for w in study.workloads:
        rs = [study.get(w, rule) for rule in study.rules]
        kinds = [("curves", figs.loss_curves), ("km", figs.time_to_target_curves), ("tuning", figs.tuning_curves)]
        if any("learning_rate" in r.tune_hparams for r in rs):
            kinds.append(("lr", figs.lr_sensitivity))
        for kind, draw in kinds:
            out[f"{kind}_{w}"] = draw(study, w, os.path.join(folder, f"{kind}_{_slug(w)}.png"))
        if any(r.paths is not None for r in rs):
            out[f"race_{w}"] = figs.race(study, w, os.path.join(folder, f"race_{_slug(w)}.png"),
                                         objective=objectives.get(w), bounds=bounds.get(w))
    names, rho = performance_profiles(study, taus)
    out["profiles"] = figs.profile_plot(names, taus, rho, os.path.join(folder, "profiles.png"),
                                        reference=study.reference)
    return out


def check_out_dir(out_dir, *, overwrite: bool = False) -> str:
    """Raise unless ``out_dir`` can take a report: it is new or empty, or (with ``overwrite``) holds only a previous
    report's files. Call it before a long study, so that a bad folder is reported at once. Returns the path.

    Example:
      >>> import tempfile, os
      >>> folder = tempfile.mkdtemp()
      >>> open(os.path.join(folder, "notes.txt"), "w").close()
      >>> check_out_dir(folder)
      Traceback (most recent call last):
      ...
      FileExistsError: the folder ... holds 'notes.txt', which is not a file of a lab report ...
    """
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir!r} is a file, expected a folder for the report; pass a new or empty folder.")
    if os.path.isdir(out_dir):
        foreign = _foreign_file(out_dir)
        if foreign is not None:
            raise FileExistsError(f"the folder {out_dir!r} holds {foreign!r}, which is not a file of a lab "
                                  f"report ({', '.join(OUTPUTS)}, figures/*.png); pass a new or empty folder so "
                                  f"that nothing there is overwritten or mixed with this report.")
        if not overwrite and os.listdir(out_dir):
            raise FileExistsError(f"the folder {out_dir!r} already holds a lab report; pass a new folder, or "
                                  f"overwrite=True (fnn lab --overwrite) to replace it.")
    return out_dir


def write(study, out_dir, *, figures: bool = True, objectives=None, bounds=None, comparisons=None,
          overwrite: bool = False) -> dict:
    """Write the report of ``study`` into the folder ``out_dir``: ``report.md``, ``runs.csv`` (``runs_table``),
    ``study.json`` (``Study.to_json``, read back with ``Study.from_json``), ``manifest.json`` and, with ``figures``,
    ``figures/*.png`` (``write_figures``; ``objectives``/``bounds``: ``{workload: ...}`` for the 2-D races).

    The folder must be new or empty (``check_out_dir``); with ``overwrite=True`` it may hold a previous report, whose
    files are replaced (its figures first removed). A folder that holds any other file is always refused, so that
    nothing of yours is overwritten or mixed in.

    Returns:
      ``{"report", "runs", "study", "manifest", <figure names>...: path}``.
    """
    out_dir = check_out_dir(out_dir, overwrite=overwrite)
    fig_dir = os.path.join(out_dir, "figures")
    if os.path.isdir(fig_dir):
        for name in os.listdir(fig_dir):  # a previous report's figures (checked above: no other file is there)
            if name.endswith(".png") and os.path.isfile(os.path.join(fig_dir, name)):
                os.remove(os.path.join(fig_dir, name))
    os.makedirs(out_dir, exist_ok=True)
    paths = {key: os.path.join(out_dir, name) for key, name in zip(("report", "runs", "study", "manifest"), OUTPUTS)}
    text = study.to_json()
    with open(paths["study"], "w") as f:
        f.write(text)
    with open(paths["manifest"], "w") as f:
        json.dump(json.loads(text)["manifest"], f, indent=1)
    _write_csv(runs_table(study), paths["runs"])
    report = markdown(study, comparisons)
    if figures:
        drawn = write_figures(study, fig_dir, objectives=objectives, bounds=bounds)
        paths.update(drawn)
        report += "\n## Figures\n\n" + "\n".join(f"![{k}](figures/{os.path.basename(p)})" for k, p in drawn.items())
        report += "\n"
    with open(paths["report"], "w") as f:
        f.write(report)
    return paths
