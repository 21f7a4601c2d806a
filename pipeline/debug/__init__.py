"""Layer by layer: where an artifact's numbers leave the PyTorch model's (`phone-pipeline debug RUN_DIR ARTIFACT`).

The artifact and the PyTorch model it must reproduce run on the same evaluation samples; each side's intermediate
tensors are matched to module names (ONNX: the exporter's scope metadata; TFLite: the weights of each weighted op and
the place in the graph of every other op, through the ONNX file onnx2tf converted; PT2E programs and the int8 .pte
that reproduces one: the nodes' module stacks) and compared per module. `--against source` compares a TFLite file
with that ONNX file op by op (pools, concats, reshapes, softmax, not only convolutions) and names the first op whose
SQNR falls below the threshold. Layout (NHWC) and int8 scales are undone before comparing. Tensors that match no
module are left out and counted, never guessed.

For example::

    page = debug(Path("build/runs/fashion-mnist-mobilenetv2__host"), "tflite-pruned-int8-ptq")
    # build/runs/.../debug/tflite-pruned-int8-ptq.md (+ .json, .png)
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from pipeline import data
from pipeline.artifacts.artifact import Artifact
from pipeline.artifacts.manifest import find_artifact, stage_data
from pipeline.core.errors import UserError, artifact_failed, shown
from pipeline.engine.recipes import recipe_of
from pipeline.layers import metrics, torch_layers
from pipeline.layers.tensor_pairs import UNCONFIRMED
from pipeline.recipe.config import Config
from pipeline.runtimes.batched import run_artifact  # the artifact's own output, batched as evaluate runs it

# A layer whose SQNR falls below this is where the artifact diverges (by the artifact's precision; --min-sqnr).
MIN_SQNR_DB = {"fp32": 60.0, "fp16": 35.0, "int8": 15.0}
SAMPLES = 8


def reference_model(art: Artifact, arts: dict[str, Artifact]) -> Artifact:
    """The PyTorch (state_dict) artifact whose modules `art`'s layers are compared with."""
    seen, cur = set(), art
    while cur.format != "torch":
        nxt = cur.reference or cur.extra.get("source", "")
        if cur.format == "pt2":
            nxt = cur.extra.get("source", "")
            # QAT changed the weights: its own float model, not the one it started from, is what int8 approximates
            tuned = [a.name for a in arts.values() if a.format == "torch" and a.quantization == cur.quantization
                     and a.pruned == cur.pruned and a.lowrank == cur.lowrank and a.role == "intermediate"]
            if cur.quantization == "qat" and tuned:
                nxt = tuned[0]
        if not nxt or nxt in seen or nxt not in arts:
            raise UserError(f"{shown(art.name)}: no PyTorch model to compare its layers with (it was imported from "
                            f"{art.extra.get('imported_from', 'a file')}); debug needs a run that starts from a "
                            "PyTorch model")
        seen.add(nxt)
        cur = arts[nxt]
    return cur


def _from_recipe(art: Artifact, recipe: Config) -> Artifact:
    """`art` with the recipe's model spec in place of the one its record names (a run folder names no code to run)."""
    spec = {k: v for k, v in recipe.data["model_spec"].items() if k != "recipe"}
    return replace(art, extra={**art.extra, "model": spec})


def _runtime_layers(art: Artifact, arts: dict[str, Artifact], x: np.ndarray) -> tuple[dict, np.ndarray, list[str]]:
    """({module: (value NCHW, how matched)}, final output, notes) for the artifact's format."""
    from pipeline.runtimes import batch_size

    if art.format == "onnx":
        import onnx

        from pipeline.layers import onnx_layers

        model = onnx.load(art.path)
        tensors = onnx_layers.module_outputs(model)
        values = onnx_layers.run_with_intermediates(model, list(tensors.values()), x, batch_size(art))
        final = values[model.graph.output[0].name]
        how = "ONNX node scope (pkg.torch.onnx.name_scopes)"
        return {m: (values[t], how) for m, t in tensors.items() if t in values}, final, [
            "ONNX Runtime with graph optimizations off, so every tensor is the one the file computes"]
    if art.format == "tflite":
        return _tflite_layers(art, arts, x)
    if art.format in ("pt2", "pte"):
        from pipeline.layers import pt2_layers

        program = art if art.format == "pt2" else arts.get(art.reference)
        notes = []
        if program is None or program.format != "pt2":
            layers: dict = {}
            notes.append("the .pte's XNNPACK delegate runs the whole graph as one call and keeps no intermediate "
                         "tensors, and this program has no PT2E reference: only its final output is compared")
        else:
            values, _ = pt2_layers.run_with_intermediates(program.path, torch.from_numpy(x))
            layers = {m: (v, f"PT2E node module stack ({program.name})") for m, v in values.items()}
            if art.format == "pte":
                notes.append(f"layers: the PT2E program {program.name} that this .pte reproduces (the XNNPACK "
                             "delegate keeps no intermediate tensors); output: the .pte itself in ExecuTorch")
        return layers, run_artifact(art, x, threads=1), notes
    raise UserError(f"{shown(art.name)}: a {art.format} artifact is the reference itself; debug an artifact made "
                    "from it")


def _tflite_run(art: Artifact, arts: dict[str, Artifact], x: np.ndarray):
    """(found {ONNX tensor: (value NCHW, how, weight diff)}, ONNX model, its artifact, final output, notes)."""
    import onnx

    from pipeline.layers import onnx_layers, tflite_layers
    from pipeline.runtimes import batch_size, to_artifact_input

    source = arts.get(art.extra.get("source", ""))
    if source is None or source.format != "onnx":
        raise UserError(f"{shown(art.name)}: the ONNX file it was converted from is not in the run; debug needs it to "
                        "name TFLite tensors")
    model = onnx.load(source.path)
    shapes = onnx_layers.tensor_shapes(model, x)
    found, _ = tflite_layers.run_with_intermediates(art.path, to_artifact_input(x, art), batch_size(art), model,
                                                    shapes)
    layers = {}
    for tensor, (value, pair) in found.items():
        if pair.layout == "channels-last":
            value = np.moveaxis(value, -1, 1)
        how = f"{pair.how}: TFLite {pair.tflite_tensor} = ONNX {pair.onnx_node} of {source.name} ({pair.tflite_op}"
        how += ", channels last)" if pair.layout == "channels-last" and value.ndim != 4 else ")"
        layers[tensor] = (np.ascontiguousarray(value), how, pair.weight_difference)
    final = run_artifact(art, x, threads=1)
    notes = ["layers: LiteRT builtin kernels (the XNNPACK delegate keeps no intermediate tensors); output: LiteRT "
             "with XNNPACK, as benchmarked",
             f"TFLite ops matched to ONNX nodes of {source.name}: weighted ops by their weights, the others by their "
             "place in the graph and their shape (onnx2tf keeps no ONNX names inside the file)"]
    return layers, model, source, final, notes


def _tflite_layers(art: Artifact, arts: dict[str, Artifact], x: np.ndarray) -> tuple[dict, np.ndarray, list[str]]:
    from pipeline.layers import onnx_layers

    found, model, _, final, notes = _tflite_run(art, arts, x)
    module_of = {n.output[0]: onnx_layers.node_module(n) for n in model.graph.node if n.output}
    last = set(onnx_layers.module_outputs(model).values())  # a module's value is its last node's
    layers = {}
    for t, entry in found.items():
        if module_of.get(t) and (t in last or entry[-1] is not None):  # a weighted op: as before
            layers[module_of[t]] = _without_none(entry)
    return layers, final, notes


def _without_none(entry: tuple) -> tuple:
    """(value, how[, weight difference]): pairs found without weights carry no weight difference."""
    return entry if entry[-1] is not None else entry[:-1]


def _against_source(art: Artifact, arts: dict[str, Artifact], x: np.ndarray):
    """A TFLite file against the ONNX file onnx2tf converted (ONNX Runtime): where the conversion itself went wrong.

    Every op the two graphs share is compared, in ONNX graph order; named by module where the ONNX file records one,
    else by ONNX node name."""
    from pipeline.layers import onnx_layers
    from pipeline.layers.tensor_pairs import TRANSPARENT, OnnxGraph, label
    from pipeline.runtimes import batch_size

    if art.format != "tflite":
        raise UserError(f"{shown(art.name)}: --against source compares a TFLite file with the ONNX file it was "
                        f"converted from; a {art.format} artifact has none (use the default, --against torch)")
    found, model, source, final, notes = _tflite_run(art, arts, x)
    nodes = {o: (n, label(n, i)) for i, n in enumerate(model.graph.node) for o in n.output if o}
    order = [t for t in nodes if t in found]
    values = onnx_layers.run_with_intermediates(model, order, x, batch_size(source))
    ref = torch_layers.ModuleOutputs()
    layers, names = {}, {}
    for t in order:
        node, node_label = nodes[t]
        name = onnx_layers.node_module(node) or node_label
        if name in ref.outputs:
            name = f"{name} ({node_label})"
        ref.outputs[name], ref.kinds[name] = values[t], node.op_type
        layers[name], names[t] = _without_none(found[t]), name
    ref_out = values.get(model.graph.output[0].name)
    if ref_out is None:
        ref_out = onnx_layers.run_with_intermediates(model, [], x, batch_size(source))[model.graph.output[0].name]
    inputs = _inputs_by_row(model, names)
    constant = OnnxGraph(model, {}).constant
    alone = [nodes[o][1] for o in nodes if o not in found and o not in constant and nodes[o][0].output[0] == o
             and nodes[o][0].op_type not in TRANSPARENT]
    if alone:
        notes.append(f"{len(alone)} ONNX nodes have no TFLite tensor of their own (fused into the op after them, "
                     f"or not paired): {', '.join(alone[:20])}{' ...' if len(alone) > 20 else ''}")
    return ref, ref_out, layers, final, notes, {"name": source.name, "path": source.path,
                                                "runtime": "onnxruntime (graph optimizations off)"}, inputs


def _inputs_by_row(model, names: dict[str, str]) -> dict[str, list[str]]:
    """row -> the rows of the ONNX tensors its node reads (through ops that were not compared), for the SQNR drop."""
    producer = {o: n for n in model.graph.node for o in n.output if o}
    graph_inputs = {i.name for i in model.graph.input}
    out: dict[str, list[str]] = {}
    for tensor, name in names.items():
        seen, frontier, found = set(), list(producer[tensor].input), []
        while frontier:
            t = frontier.pop()
            if t in seen or not t or t in graph_inputs:
                continue
            seen.add(t)
            if t in names:
                found.append(names[t])
            elif t in producer:
                frontier.extend(producer[t].input)
        out[name] = found
    return out


def compare_layers(ref: torch_layers.ModuleOutputs, layers: dict, threshold: float) -> tuple[list[dict], list[dict]]:
    """(rows in model order, unmatched) for the runtime's {module: (value, how[, weight diff])}."""
    present = set(layers)
    by_canonical: dict[str, tuple] = {}
    for module, entry in layers.items():
        by_canonical[ref.canonical(module, present)] = (module, *entry)
    rows, unmatched = [], []
    for name, expected in ref.outputs.items():
        if name not in by_canonical:
            continue
        module, value, how, *rest = by_canonical[name]
        if value.shape != expected.shape:
            unmatched.append({"layer": name, "reason": f"shape {list(value.shape)} against {list(expected.shape)}"})
            continue
        row = {"layer": name, "kind": ref.kinds[name], "matched_by": how, **metrics.compare(value, expected)}
        if module != name:
            row["matched_by"] += f" ({module} with {name} folded in)"
        if rest:
            row["weight_relative_difference"] = rest[0]
        row["diverged"] = row["sqnr_db"] < threshold
        rows.append(row)
    for module in layers:
        if ref.canonical(module, present) not in ref.outputs:
            unmatched.append({"layer": module, "reason": "no PyTorch module of that name returned one tensor"})
    return rows, unmatched


def _add_input_sqnr(rows: list[dict], inputs: dict[str, list[str]]) -> None:
    """Each row's inputs' lowest SQNR and how much its own falls below it: the op where the error begins drops."""
    sqnr = {r["layer"]: r["sqnr_db"] for r in rows}
    for row in rows:
        before = [sqnr[i] for i in inputs.get(row["layer"], []) if i in sqnr]
        if not before:
            continue
        row["input_sqnr_db"] = min(before)
        row["sqnr_drop_db"] = 0.0 if math.isinf(row["sqnr_db"]) and row["sqnr_db"] > 0 else \
            row["input_sqnr_db"] - row["sqnr_db"]


def debug(run_dir: Path, name: str, samples: int = SAMPLES, min_sqnr_db: float | None = None,
          against: str = "torch", recipe: Config | str | None = None) -> Path:
    """Compare `name`'s layers with its PyTorch model (`against="source"`: a TFLite file with the ONNX file it was
    converted from) on `samples` evaluation inputs; returns the page's path.

    `recipe`: the run's recipe (the runner's own), or the path the user gave (`--recipe`); None: the bundled recipe
    the manifest names, if its sha256 matches. The model and the data are rebuilt from it, never from what the run
    folder records (see `engine.recipes.recipe_of`)."""
    from pipeline.debug import page
    from pipeline.models.checkpoint import load_model

    start = time.perf_counter()
    manifest, arts, art = find_artifact(run_dir, name)
    if not isinstance(recipe, Config):
        recipe = recipe_of(manifest, run_dir, recipe)
    x = data.to_tensor(data.eval_split(recipe, samples).images, data.input_spec(recipe))
    torch.set_num_threads(1)
    inputs: dict[str, list[str]] = {}
    try:
        if against == "source":
            ref, ref_out, layers, final, notes, reference, inputs = _against_source(art, arts, x)
        else:
            ref_art = reference_model(art, arts)
            model = load_model(_from_recipe(ref_art, recipe))
            ref = torch_layers.capture(model, torch.from_numpy(x))
            with torch.no_grad():
                ref_out = model(torch.from_numpy(x)).numpy()
            layers, final, notes = _runtime_layers(art, arts, x)
            reference = {"name": ref_art.name, "path": ref_art.path, "runtime": "torch (eager, forward hooks)"}
    except UserError:
        raise
    except Exception as exc:  # a damaged or foreign file in the run folder; our own bugs show the same way here
        raise artifact_failed(art.path, art.name, "be run layer by layer", exc) from None
    threshold = MIN_SQNR_DB.get(art.precision, 40.0) if min_sqnr_db is None else min_sqnr_db
    rows, unmatched = compare_layers(ref, layers, threshold)
    _add_input_sqnr(rows, inputs)
    output = metrics.compare(final.reshape(ref_out.shape), ref_out)
    output["top1_agreement"] = float((final.reshape(len(x), -1).argmax(1) == ref_out.reshape(len(x), -1)
                                      .argmax(1)).mean())
    quantized = stage_data(manifest, "quantize")
    if art.precision == "int8" and quantized.get("sensitivity"):
        notes.append("int8 sensitivity (quantize.sensitivity; one layer int8 at a time, output SQNR): " + ", ".join(
            f"{r['layer']} {r['sqnr_db']:.1f} dB" for r in quantized["sensitivity"]["layers"][:5]))
    if art.format in ("pte", "pt2") and art.quantization == "ptq" and quantized.get("fallback", {}).get("float_layers"):
        notes.append(f"kept in float by quantize.fallback: {', '.join(quantized['fallback']['float_layers'])}")
    first = next((r for r in rows if r["diverged"] and UNCONFIRMED not in r["matched_by"]), None)
    worst = min(rows, key=lambda r: r["sqnr_db"], default=None)
    result = {
        "schema": "phone-pipeline/debug/1",
        "artifact": {k: getattr(art, k) for k in ("name", "format", "precision", "path", "sha256")},
        "reference": reference,
        "samples": int(len(x)),
        "min_sqnr_db": threshold,
        "layers": rows,
        "unmatched": unmatched,
        "modules_without_a_tensor": len(ref.outputs) - len(rows),
        "output": output,
        "first_divergent_layer": first["layer"] if first else None,
        "worst_layer": worst["layer"] if worst else None,
        "worst_sqnr_db": worst["sqnr_db"] if worst else None,
        "notes": notes,
        "seconds": round(time.perf_counter() - start, 2),
    }
    return page.write(run_dir / "debug", result)


def _against_for(run_dir: Path, name: str) -> str:
    """torch when the artifact has a PyTorch model to compare with; else, for a TFLite file converted from an imported
    ONNX file, that file (where a conversion error shows)."""
    _, arts, art = find_artifact(run_dir, name)
    try:
        reference_model(art, arts)
    except UserError:
        source = arts.get(art.extra.get("source", ""))
        if art.format == "tflite" and source is not None and source.format == "onnx":
            return "source"
    return "torch"


def explain_gate_failures(run_dir: Path, violations: list[str], recipe: Config) -> None:
    """Layer-by-layer pages of the artifacts that failed an evaluate gate (the engine calls this after a failed
    gate when the CLI asks it to); a page that cannot be made is a warning."""
    import logging

    log = logging.getLogger("pipeline")
    # a pruned float model's accuracy drop is the pruning's, not a conversion's: no layer page explains it
    float_limits = ("(prune.max_accuracy_drop)", "(decompose.max_accuracy_drop)")
    wanted = [v.split(":")[0] for v in violations if not v.endswith(float_limits)]
    for name in dict.fromkeys(n for n in wanted if not n.startswith("torch-")):
        try:
            page = debug(run_dir, name, recipe=recipe, against=_against_for(run_dir, name))
        except Exception as exc:  # the gate's own message is what the user must see; the page is a help
            log.warning("debug %s: no layer-by-layer page: %s", name, str(exc).splitlines()[0][:200] if str(exc)
                        else type(exc).__name__)
            continue
        log.info("debug %s: layer by layer in %s", name, page)
