"""Figures of the analysis (matplotlib, no display needed): what a reader of the study looks at.

- variable importance: each variable's likelihood-ratio chi-square in a model, as Fig. 2 of
  doi:10.1016/j.ejca.2024.114185;
- Kaplan-Meier curves by tertile of the burden variable;
- the partial effect (log hazard ratio against the median) of a variable with its pointwise 95 % band;
- survival curves from the Cox model at chosen values of the burden variable, **conditional** on the other
  variables at their median (numbers) or reference level (categories): one covariate profile, not a
  cohort-averaged (standardised) curve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cox import Z_95
from .followup import kaplan_meier


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "ttvprognosis", "font.size": 9})
    return plt


def save(figure, folder: Path, stem: str, formats: tuple[str, ...]) -> list[str]:
    names = []
    for extension in formats:
        name = f"{stem}.{extension}"
        metadata = {"Date": None} if extension == "svg" else {}
        figure.savefig(folder / name, dpi=150, bbox_inches="tight", metadata=metadata)
        names.append(name)
    _pyplot().close(figure)
    return names


def importance_chart(model_name: str, drop_one: list[dict]):
    plt = _pyplot()
    ordered = sorted(drop_one, key=lambda row: row["lr_chi2"])
    figure, axes = plt.subplots(figsize=(6.0, 0.35 * len(ordered) + 1.2))
    positions = np.arange(len(ordered))
    axes.plot([row["lr_chi2"] for row in ordered], positions, "o", color="#1f4e79")
    axes.set_yticks(positions, [f"{row['variable']} ({row['df']} df)" for row in ordered])
    for position, row in zip(positions, ordered):
        axes.annotate(f"P = {row['p']:.3g}", (row["lr_chi2"], position), xytext=(6, -3),
                      textcoords="offset points", fontsize=7)
    axes.set_xlabel("Likelihood-ratio chi-square (variable dropped from the model)")
    axes.set_title(f"Variable importance in model '{model_name}'")
    axes.set_xlim(left=0)
    axes.grid(axis="x", alpha=0.3)
    return figure


def km_by_tertile(time: np.ndarray, event: np.ndarray, values: np.ndarray, variable: str, time_label: str):
    plt = _pyplot()
    cuts = np.quantile(values, [1.0 / 3.0, 2.0 / 3.0])
    groups = np.digitize(values, cuts, right=True)
    figure, axes = plt.subplots(figsize=(6.0, 4.0))
    bounds = [values.min(), cuts[0], cuts[1], values.max()]
    for group in range(3):
        chosen = groups == group
        if not np.any(chosen):
            continue
        curve = kaplan_meier(time[chosen], event[chosen])
        steps_t = np.concatenate([[0.0], curve["time"], [time[chosen].max()]])
        steps_s = np.concatenate([[1.0], curve["survival"], [curve["survival"][-1] if curve["survival"].size
                                                           else 1.0]])
        axes.step(steps_t, steps_s, where="post",
                  label=f"tertile {group + 1}: {bounds[group]:.3g}-{bounds[group + 1]:.3g} (n = {chosen.sum()})")
    axes.set_ylim(0, 1.02)
    axes.set_xlabel(time_label)
    axes.set_ylabel("Survival (Kaplan-Meier)")
    axes.set_title(f"Kaplan-Meier by tertile of {variable}")
    axes.legend(fontsize=7)
    return figure


def partial_effect(term, fit, column_slice: slice, values: np.ndarray, model_name: str):
    plt = _pyplot()
    low, median, high = np.quantile(values, [0.05, 0.5, 0.95])
    grid = np.exp(np.linspace(np.log(low), np.log(high), 200)) if (
        term.kind == "log" or term.transform == "log") else np.linspace(low, high, 200)
    difference = term.matrix(grid) - term.matrix([median])
    beta = fit.coefficients[column_slice]
    covariance = fit.covariance[column_slice, column_slice]
    log_hr = difference @ beta
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", difference, covariance, difference), 0.0))
    figure, axes = plt.subplots(figsize=(6.0, 4.0))
    axes.fill_between(grid, np.exp(log_hr - Z_95 * se), np.exp(log_hr + Z_95 * se), alpha=0.25,
                      color="#1f4e79", label="95 % pointwise band")
    axes.plot(grid, np.exp(log_hr), color="#1f4e79", label="hazard ratio")
    axes.axhline(1.0, color="grey", lw=0.8)
    from matplotlib.ticker import FormatStrFormatter

    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    if term.kind == "log" or term.transform == "log":
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes.set_xlabel(f"{term.variable} (5th-95th percentile)")
    axes.set_ylabel(f"Hazard ratio against the median ({median:.3g})")
    axes.set_title(f"Partial effect of {term.variable} in model '{model_name}'")
    axes.legend(fontsize=7)
    return figure


def adjusted_curves(fit, baseline: tuple[np.ndarray, np.ndarray], profile: np.ndarray, column_slice: slice, term,
                    values: tuple[float, ...], time_label: str, profile_text: str, model_name: str):
    """S(t | profile, burden = value) = exp(-H0(t) exp(x beta)), H0 Breslow's baseline for x beta."""
    plt = _pyplot()
    moments, cumulative = baseline
    figure, axes = plt.subplots(figsize=(6.0, 4.0))
    for value in values:
        row = profile.copy()
        row[column_slice] = term.matrix([value])[0]
        survival = np.exp(-cumulative * np.exp(float(row @ fit.coefficients)))
        axes.step(np.concatenate([[0.0], moments]), np.concatenate([[1.0], survival]), where="post",
                  label=f"{term.variable} = {value:g}")
    axes.set_ylim(0, 1.02)
    axes.set_xlabel(time_label)
    axes.set_ylabel("Survival (Cox model, Breslow baseline)")
    axes.set_title(f"Model '{model_name}' at chosen {term.variable}")
    axes.text(0.0, -0.16, f"Conditional on {profile_text}", transform=axes.transAxes, fontsize=6, wrap=True,
              va="top")
    axes.legend(fontsize=7)
    return figure
