"""Graph pass: the conversion graph's automatic F0 prediction runs only when asked (an ONNX `If`).

Traced, `f0 = where(auto_f0 > 0.5, predicted, f0)` computes the F0 predictor (a transformer over every
frame) on every run, also when `auto_f0` is 0, which is nearly always. This pass moves the nodes of the
predictor's scope (`/auto_f0/`) into the `then` branch of an `If` on `auto_f0 > 0.5` whose `else` branch
passes the tracked F0 through, and replaces the `Where` by it. The branches read the main graph's values
and initializers by name (ONNX outer scope), so nothing is copied. Same numbers either way: parity runs
afterwards with `auto_f0` 0 and 1.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import helper

from svc_export.graph_files import infer_shapes, replace_if_valid

SCOPE = "/auto_f0/"
PASS_NAME = "auto_f0_as_branch"


def predictor_as_branch(model: onnx.ModelProto, scope: str = SCOPE) -> bool:
    """Rewrite `model` in place; False (unchanged) when it has no predictor scope or not the expected shape."""
    graph = model.graph
    scoped = [n for n in graph.node if scope in n.name]
    if not scoped:
        return False
    final = [o.name for o in graph.output]
    wheres = [n for n in graph.node if scope not in n.name and n.op_type == "Where"
              and any(i in {o for m in scoped for o in m.output} for i in n.input[1:2])]
    if len(wheres) != 1:
        return False
    where = wheres[0]
    predicted = where.input[1]
    moved = {id(n) for n in scoped}
    changed = True
    while changed:  # a scoped node whose output is read outside stays in the main graph (e.g. a shared reshape)
        changed = False
        outputs = {o: id(n) for n in graph.node if id(n) in moved for o in n.output}
        for node in graph.node:
            if id(node) in moved:
                continue
            for name in node.input:
                if name in outputs and not (node is where and name == predicted):
                    moved.discard(outputs.pop(name))
                    changed = True
        for name in final:
            if name in outputs:
                moved.discard(outputs.pop(name))
                changed = True
    inside = [n for n in graph.node if id(n) in moved]
    if predicted not in {o for n in inside for o in n.output}:
        return False
    condition, tracked = where.input[0], where.input[2]
    inferred = infer_shapes(model).graph  # past 2 GiB too
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.value_info) + list(inferred.input)}
    elem = types.get(tracked) or types.get(predicted) or onnx.TensorProto.FLOAT  # float16 in fp16 copies
    value = helper.make_tensor_value_info
    then_branch = helper.make_graph(inside, "auto_f0_predicted", [], [value(predicted, elem, None)])
    kept = f"{where.output[0]}_tracked"
    else_branch = helper.make_graph([helper.make_node("Identity", [tracked], [kept])], "auto_f0_tracked", [],
                                    [value(kept, elem, None)])
    flag = f"{where.output[0]}_flag"
    reduce_flag = helper.make_node("Squeeze", [condition], [flag], name=f"{where.name}_flag")  # [1] -> scalar
    branch = helper.make_node("If", [flag], [where.output[0]], name=f"{where.name}_if",
                              then_branch=then_branch, else_branch=else_branch)
    nodes = []
    for node in graph.node:
        if id(node) in moved:
            continue
        if node is where:
            nodes += [reduce_flag, branch]
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return True


def rewrite_file(path: Path) -> bool:
    """Apply the pass to the graph file `path` (kept as it was when the result fails the checker)."""
    model = onnx.load(str(path))
    if not predictor_as_branch(model):
        return False
    return replace_if_valid(path, model, ".branch.onnx",
                            "the auto-F0 branch pass made an invalid graph of {name} ({error}); kept the flat one")


def branch_as_where(model: onnx.ModelProto) -> bool:
    """Undo `predictor_as_branch` in place (the predictor's nodes back in the main graph, the `If` a `Where`):
    for tools that do not look into subgraphs, such as ONNX Runtime's int8 calibration. False when the
    model has no such branch."""
    graph = model.graph
    branches = [n for n in graph.node if n.op_type == "If" and n.name.endswith("_if")
                and any(a.name == "then_branch" and a.g.name == "auto_f0_predicted" for a in n.attribute)]
    if len(branches) != 1:
        return False
    (branch,) = branches
    then_graph = next(a.g for a in branch.attribute if a.name == "then_branch")
    else_graph = next(a.g for a in branch.attribute if a.name == "else_branch")
    flag = next(n for n in graph.node if branch.input[0] in n.output)  # the Squeeze of the condition
    tracked = else_graph.node[0].input[0]
    where = helper.make_node("Where", [flag.input[0], then_graph.output[0].name, tracked], list(branch.output),
                             name=branch.name[: -len("_if")])
    nodes = []
    for node in graph.node:
        if node is flag:
            continue
        if node is branch:
            nodes += list(then_graph.node) + [where]
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return True
