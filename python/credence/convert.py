"""A PyTorch module as a credence network: torch.fx traces it, and each layer becomes an op of
credence's op list (include/credence/model/network.h) named as in the module's state_dict, so the
module's own weights load by name. Skip connections become activation slots."""
import json
import operator

from ._credence import NotSupported

SUPPORTED = ("nn.Conv2d (square kernel, no dilation or groups), nn.Linear, nn.Embedding (first, on token ids), "
             "nn.GroupNorm, nn.LayerNorm (affine, "
             "eps 1e-5), nn.BatchNorm2d (its running statistics, frozen), nn.MaxPool2d, nn.ReLU, nn.GELU, "
             "nn.AdaptiveAvgPool2d(1), nn.Flatten, nn.Identity, nn.Dropout (identity), "
             "nn.MultiheadAttention (self-attention, batch_first, no masks), residual additions, "
             "relu/gelu/flatten/mean over (2, 3) as functions, and for tokens x.flatten(2).transpose(1, 2) "
             "and x.mean(1)")


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
    if isinstance(m, nn.Embedding):
        if m.padding_idx is not None or m.max_norm is not None or m.scale_grad_by_freq or m.sparse:
            raise NotSupported(f"layer '{name}': Embedding with padding_idx, max_norm, scale_grad_by_freq or sparse "
                               "gradients is not supported")
        return _op("embed", name, m.num_embeddings, m.embedding_dim, bias=False)
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
    if isinstance(m, nn.MultiheadAttention):
        if not m.batch_first or not m._qkv_same_embed_dim or m.in_proj_bias is None or m.bias_k is not None \
                or m.add_zero_attn:
            raise NotSupported(f"layer '{name}': MultiheadAttention must be batch_first, with biases, equal "
                               "query/key/value sizes and no added key/value biases or zero attention")
        e = m.embed_dim
        return [_op("linear", f"{name}.in_proj", e, 3 * e), _op("attention", "", e, e, groups=m.num_heads),
                _op("linear", f"{name}.out_proj", e, e, bias=m.out_proj.bias is not None)]
    raise NotSupported(f"layer '{name}' ({type(m).__name__}) has no credence op; supported: {SUPPORTED}")


def _is_call(node, name):
    return node.op == "call_method" and node.target == name


def _function_op(node, torch, F):
    t, args, kw = node.target, node.args, node.kwargs
    if t is operator.getitem and args[0].op == "call_module" and args[1] == 0:
        return None  # an attention module's output; its weights (item 1) are not computed
    if (_is_call(node, "flatten") or t is torch.flatten) and len(args) == 2 and args[1] == 2 and not kw:
        return _op("to_tokens")  # images [N, C, H, W] -> tokens, with the transpose that follows
    if _is_call(node, "transpose") and sorted(a % 3 for a in args[1:3]) == [1, 2] and \
            (_is_call(args[0], "flatten") or args[0].target is torch.flatten):
        return None
    if (t is torch.mean or _is_call(node, "mean")) and len(args) == 2 and args[1] == 1 and not kw:
        return _op("mean_tokens")  # over the tokens of [N, T, C]
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
        if isinstance(m, nn.MultiheadAttention):  # its input projection is credence's linear `in_proj`
            state[f"{name}.in_proj.weight"] = state.pop(f"{name}.in_proj_weight")
            state[f"{name}.in_proj.bias"] = state.pop(f"{name}.in_proj_bias")
        if isinstance(m, nn.BatchNorm2d):
            scale = torch.rsqrt(m.running_var + m.eps)
            w = m.weight.detach() if m.weight is not None else torch.ones_like(scale)
            b = m.bias.detach() if m.bias is not None else torch.zeros_like(scale)
            state[f"{name}.weight"] = w * scale
            state[f"{name}.bias"] = b - m.running_mean * w * scale
    return state


def architecture(module, input_shape):
    """The architecture JSON of credence's op list for `module` on inputs of `input_shape` [C, H, W] or [F]."""
    import torch
    import torch.fx
    import torch.nn as nn
    import torch.nn.functional as F

    if len(input_shape) not in (1, 3):
        raise NotSupported(f"converted modules take images [C, H, W] or feature vectors [F]; the data has shape "
                           f"{list(input_shape)}")
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except NotSupported:
        raise
    except Exception as e:  # fx's own limits (data-dependent control flow, tuple unpacking on this Python)
        raise NotSupported(f"torch.fx could not trace the module's forward ({type(e).__name__}: {e}); write it "
                           "without data-dependent control flow, and index tuple outputs such as "
                           "attn(x, x, x)[0] instead of unpacking them") from None
    graph.eliminate_dead_code()  # e.g. the unused attention weights of `x, _ = attn(x, x, x)`
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
            if node.op == "call_module":
                sub = module.get_submodule(node.target)
                if isinstance(sub, nn.MultiheadAttention):
                    given = list(node.args[:3]) + [node.kwargs.get(k) for k in ("query", "key", "value") if k in node.kwargs]
                    masks = [node.kwargs.get(k) for k in ("key_padding_mask", "attn_mask")] + list(node.args[3:4])
                    if any(a is not source for a in given) or any(m is not None for m in masks):
                        raise NotSupported(f"'{node.format_node()}': attention converts as self-attention "
                                           "attn(x, x, x) without masks")
                op = _module_op(str(node.target), sub, nn)
            else:
                op = _function_op(node, torch, F)
            if isinstance(op, dict) and op["op"] == "mean_tokens" and \
                    not any(o["op"] in ("to_tokens", "embed") for o in ops):
                raise NotSupported(f"'{node.format_node()}': a mean over axis 1 converts only over tokens "
                                   "(after x.flatten(2).transpose(1, 2) or an nn.Embedding)")
            ops.extend(op if isinstance(op, list) else [op] if op is not None else [])
            consume(source)
            current = node
            if len(node.users) > 1:
                stash(node)
    if not ops or ops[-1]["op"] != "linear":
        raise NotSupported("a converted module must end in an nn.Linear layer (its head)")
    return json.dumps({"input_shape": [int(s) for s in input_shape], "output_dim": ops[-1]["out"], "ops": ops})
