"""The report's on-device part: one row per artifact measured on a device, and a per-device Markdown table.

Built from the manifest's `on_device` stage data alone. Latencies measured under emulation keep `emulated: true`
and a table header that says they are not comparable with a phone's.
"""

from __future__ import annotations

from pipeline.artifacts.manifest import stage_data

LATENCY_KEYS = ("p50", "p90", "trimmed_mean", "mean", "std", "cv")


def rows(manifest: dict) -> list[dict]:
    """report.json's `on_device` list (see README, 'report.json schema'); empty for a host target."""
    out = []
    data = stage_data(manifest, "on_device")
    for name, r in data.get("results", {}).items():
        lat = r.get("latency_ms") or {}
        own = [v for v in data.get("gate_violations", []) if v.startswith(f"{name} on ")]
        out.append({
            "name": name,
            "format": r["format"],
            "precision": r["precision"],
            "device": r["device"],
            "serial": r["serial"],
            "emulated": bool(r["emulated"]),
            "abi": r.get("abi"),
            "runtime": r["runtime"],
            "samples": r["samples"],
            "accuracy": r.get("accuracy"),
            "host_accuracy": r.get("host_accuracy"),
            "host_agreement": r["host_agreement"],
            "max_abs_diff": r["max_abs_diff"],
            "max_rel_diff": r.get("max_rel_diff"),
            "max_diff_steps": r.get("max_diff_steps"),
            "latency_ms": {k: lat[k] for k in LATENCY_KEYS if k in lat} or None,
            "runs": lat.get("runs"),
            "warmup": r.get("warmup"),
            "load_ms": r.get("load_ms"),
            "threads": r.get("threads"),
            "core_mask": r.get("core_mask"),
            "core_mask_applied": r.get("core_mask_applied"),
            "cooldown_s": r.get("cooldown_s"),
            "thermal_before": r.get("thermal_before"),
            "thermal_after": r.get("thermal_after"),
            "gate": "fail" if own else "pass",
            "violations": own,
        })
    return out


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _thermal(before: dict | None, after: dict | None) -> str:
    """Hottest zone before -> after, in degrees C; '-' where the device does not expose thermal zones."""
    if not before or not after:
        return "-"
    return f"{max(before.values()) / 1000:.1f} -> {max(after.values()) / 1000:.1f}"


def markdown(device_rows: list[dict]) -> list[str]:
    """One table per device and kind of latency (emulated or real); no lines when nothing ran on a device."""
    lines: list[str] = []
    groups: dict[tuple, list[dict]] = {}
    for r in device_rows:
        groups.setdefault((r["device"], r["serial"], r["emulated"]), []).append(r)
    for (device, serial, emulated), group in groups.items():
        what = "emulated latency (not comparable with phones)" if emulated else "latency"
        lines += [f"## On device: {device} ({serial}{', emulated' if emulated else ''})", "",
                  "Outputs of each artifact on the device against the same artifact's outputs on the host, on the "
                  f"first {group[0]['samples']} test images. Host agreement: top-1 agreement with the host's outputs.",
                  ""]
        if emulated:
            lines += ["**Latencies below were measured under emulation (qemu-user): hundreds of times slower than "
                      "a phone. They check that the path works; never compare them with a phone's.**", ""]
        lines += [f"| artifact | runtime | precision | accuracy | host accuracy | host agreement | max abs diff "
                  f"| {what}: p50 ms | p90 ms | trimmed mean ms | cv | threads | cores | temp C | gate |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
        for r in group:
            lat = r["latency_ms"] or {}
            cores = f"{r['core_mask']}{'' if r['core_mask_applied'] else ' (not pinned)'}" if r["core_mask"] else "-"
            lines.append(
                f"| {r['name']} | {r['runtime']} | {r['precision']} | {_fmt(r['accuracy'], '.4f')} | "
                f"{_fmt(r['host_accuracy'], '.4f')} | {_fmt(r['host_agreement'], '.4f')} | "
                f"{_fmt(r['max_abs_diff'], '.2e')} | {_fmt(lat.get('p50'), '.2f')} | {_fmt(lat.get('p90'), '.2f')} | "
                f"{_fmt(lat.get('trimmed_mean'), '.2f')} | {_fmt(lat.get('cv'), '.2f')} | {r['threads']} | {cores} | "
                f"{_thermal(r['thermal_before'], r['thermal_after'])} | {r.get('gate', '-')} |")
        lines.append("")
    return lines
