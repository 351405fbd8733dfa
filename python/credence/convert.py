"""A PyTorch module as a credence network: torch.fx traces it, and each layer becomes an op of
credence's op list (include/credence/model/network.h) named as in the module's state_dict, so the
module's own weights load by name. Skip connections become activation slots."""
import json
import operator

from ._credence import NotSupported

SUPPORTED = ("nn.Conv2d (square kernel, no dilation or groups), nn.Linear, nn.GroupNorm, nn.LayerNorm (affine, "
             "eps 1e-5), nn.BatchNorm2d (its running statistics, frozen), nn.MaxPool2d, nn.ReLU, nn.GELU, "
             "nn.AdaptiveAvgPool2d(1), nn.Flatten, nn.Identity, nn.Dropout (identity), residual additions, "
             "relu/gelu/flatten/mean over (2, 3) as functions")


def _op(kind, name="", inp=0, out=0, **extra):
    op = {"op": kind, "name": name, "in": int(inp), "out": int(out), "kernel": 1, "stride": 1, "padding": 0,
          "groups": 1, "slot": 0, "bias": True, "scale": 1.0, "zero_init": False}
    op.update(extra)
    return op


def _pair(v, what, name):
    if isinstance(v, int):
        return v
    if isinstance(v, str) or len(set(v)) != 1:
        raise NotSupported(f"layer '{name}': {what} {v} must be one number for both sides")
    return int(v[0])


def _module_op(name, m, nn):
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros":
            raise NotSupported(f"layer '{name}': convolutions with groups, dilation or non-zero padding modes are not "
                               "supported")
        return _op("conv", name, m.in_channels, m.out_channels, kernel=_pair(m.kernel_size, "kernel", name),
                   stride=_pair(m.stride, "stride", name), padding=_pair(m.padding, "padding", name),
                   bias=m.bias is not None)
    if isinstance(m, nn.Linear):
        return _op("linear", name, m.in_features, m.out_features, bias=m.bias is not None)
    if isinstance(m, nn.GroupNorm):
        if not m.affine or m.eps != 1e-5:
            raise NotSupported(f"layer '{name}': GroupNorm must be affine with eps 1e-5")
        return _op("group_norm", name, m.num_channels, m.num_channels, groups=m.num_groups)
    if isinstance(m, nn.LayerNorm):
        if len(m.normalized_shape) != 1 or not m.elementwise_affine or m.eps != 1e-5:
            raise NotSupported(f"layer '{name}': LayerNorm must be over the last axis, affine, with eps 1e-5")
        return _op("layer_norm", name, m.normalized_shape[0], m.normalized_shape[0])
    if isinstance(m, nn.BatchNorm2d):
        if m.running_mean is None:
            raise NotSupported(f"layer '{name}': BatchNorm2d without running statistics has nothing to freeze")
        return _op("channel_affine", name, m.num_features, m.num_features)
    if isinstance(m, nn.MaxPool2d):
        if m.dilation not in (1, (1, 1)) or m.ceil_mode:
            raise NotSupported(f"layer '{name}': MaxPool2d with dilation or ceil_mode is not supported")
        return _op("max_pool", kernel=_pair(m.kernel_size, "kernel", name), stride=_pair(m.stride, "stride", name),
                   padding=_pair(m.padding, "padding", name))
    if isinstance(m, nn.ReLU):
        return _op("relu")
    if isinstance(m, nn.GELU):
        if getattr(m, "approximate", "none") != "none":
            raise NotSupported(f"layer '{name}': GELU must be exact (approximate='none')")
        return _op("gelu")
    if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
        return _op("global_pool")
    if isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1:
        return _op("flatten")
    if isinstance(m, (nn.Identity, nn.Dropout)):
        return None
    raise NotSupported(f"layer '{name}' ({type(m).__name__}) has no credence op; supported: {SUPPORTED}")


def _function_op(node, torch, F):
    t, args, kw = node.target, node.args, node.kwargs
    if t in (F.relu, torch.relu) or (node.op == "call_method" and t == "relu"):
        return _op("relu")
    if t in (F.gelu,) and kw.get("approximate", "none") == "none":
        return _op("gelu")
    if t is torch.flatten or (node.op == "call_method" and t == "flatten"):
        start = args[1] if len(args) > 1 else kw.get("start_dim", 0)
        if start == 1 and (len(args) < 3 or args[2] == -1):
            return _op("flatten")
    if t is torch.mean or (node.op == "call_method" and t == "mean"):
        dims = args[1] if len(args) > 1 else kw.get("dim")
        if dims is not None and sorted(d % 4 for d in dims) == [2, 3] and not kw.get("keepdim", False):
            return _op("global_pool")
    if t is F.adaptive_avg_pool2d and args[1] in (1, (1, 1)):
        return _op("global_pool")
    raise NotSupported(f"operation '{node.format_node()}' has no credence op; supported: {SUPPORTED}")


def weights(module):
    """The module's parameters by name as the converted network holds them: each BatchNorm2d folded
    into the per-channel scale and shift of its running statistics, buffers left out."""
    import collections

    import torch
    import torch.nn as nn

    state = collections.OrderedDict((k, v.detach()) for k, v in module.named_parameters())
    for name, m in module.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            scale = torch.rsqrt(m.running_var + m.eps)
            w = m.weight.detach() if m.weight is not None else torch.ones_like(scale)
            b = m.bias.detach() if m.bias is not None else torch.zeros_like(scale)
            state[f"{name}.weight"] = w * scale
            state[f"{name}.bias"] = b - m.running_mean * w * scale
    return state


def architecture(module, input_shape):
    """The architecture JSON of credence's op list for `module` on inputs of `input_shape` [C, H, W]."""
    import torch
    import torch.fx
    import torch.nn as nn
    import torch.nn.functional as F

    if len(input_shape) != 3:
        raise NotSupported(f"converted modules take images [C, H, W]; the data has shape {list(input_shape)}")
    graph = torch.fx.symbolic_trace(module).graph
    nodes = list(graph.nodes)
    pending = {n: len(n.users) for n in nodes}  # uses not yet consumed
    ops, slots, free = [], {}, list(range(64))
    current = None  # the node whose value is the network's running activation

    def stash(node):  # keep a copy of the running activation for later users
        s = free.pop(0)
        ops.append(_op("save", slot=s))
        slots[node] = s

    def bring(node):  # make `node` the running activation
        nonlocal current
        if node is current:
            return
        if node not in slots:
            raise NotSupported(f"'{node}' is used out of order in a way credence's op list cannot express")
        s = slots.pop(node)
        ops.append(_op("swap", slot=s))
        if pending.get(current, 0) > 0 and current not in slots:
            slots[current] = s
        else:
            free.append(s)
        current = node

    def consume(node):
        pending[node] -= 1
        if pending[node] == 0 and node in slots:
            free.append(slots.pop(node))

    for node in nodes:
        if node.op == "placeholder":
            current = node
            if len(node.users) > 1:
                stash(node)
        elif node.op == "output":
            if node.args[0] is not current:
                bring(node.args[0])
        elif node.op == "get_attr":
            raise NotSupported(f"'{node.target}' is a tensor used directly; credence ops hold their own parameters")
        elif node.target in (operator.add, torch.add) and all(isinstance(a, torch.fx.Node) for a in node.args[:2]):
            a, b = node.args[:2]
            if b is current:
                a, b = b, a
            if a is not current:
                bring(a)
            if b not in slots:
                raise NotSupported(f"'{node}': an addition of two values that are not both kept")
            if pending[b] > 1:  # b outlives this addition: copy it before the slot is spent
                s = slots[b]
                ops.append(_op("swap", slot=s))
                keep = free.pop(0)
                ops.append(_op("save", slot=keep))
                ops.append(_op("swap", slot=s))
                slots[b] = keep
                s_add = s
            else:
                s_add = slots.pop(b)
            ops.append(_op("add", slot=s_add))
            if s_add not in free:
                free.append(s_add)
            pending[b] -= 1
            consume(a)
            current = node
            if len(node.users) > 1:
                stash(node)
        else:
            source = node.args[0]
            if not isinstance(source, torch.fx.Node):
                raise NotSupported(f"'{node.format_node()}' has no tensor input")
            bring(source)
            op = (_module_op(str(node.target), module.get_submodule(node.target), nn) if node.op == "call_module"
                  else _function_op(node, torch, F))
            if op is not None:
                ops.append(op)
            consume(source)
            current = node
            if len(node.users) > 1:
                stash(node)
    if not ops or ops[-1]["op"] != "linear":
        raise NotSupported("a converted module must end in an nn.Linear layer (its head)")
    return json.dumps({"input_shape": [int(s) for s in input_shape], "output_dim": ops[-1]["out"], "ops": ops})
