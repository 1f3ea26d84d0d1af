"""The ARGMINN architecture: motif scanner + memory-stream syntax builder + head.

Input: (N, 4, L) one-hot float (A, C, G, T rows; N bases all-zero).
Output of ``forward``: (N, T) logits and nothing else, so tangermeme's
``predict``, ``deep_lift_shap``, ``marginalize``, ``ablate`` and variant-effect
functions take the model as it is. ``interims`` returns what interpretation
reads: the pre-norm motif activations and every layer's attention weights.

Every nonlinearity, softmax and norm is a separate ``nn.Module`` instance that
is called exactly once per forward pass with autograd on (DeepLIFT hooks rely
on that; the inference path of eval mode without autograd applies them as
functions unless they carry hooks, see ``ARGMINN._folded``), and the
two products of attention (query x tokens for the scores, weights x tokens
for the mix; see ``MemoryAttentionLayer.forward``) are tangermeme
``BilinearOp`` modules, so ``tangermeme.deep_lift_shap`` converges.
"""

import math

import torch
from tangermeme.deep_lift_shap import BilinearOp
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as _module

from .config import ModelConfig
from .data import reverse_complement
from .errors import ArgminnError


def sinusoidal_encoding(n_positions, dim, min_period=4.0, max_period=0.0):
    """(dim, n_positions) sinusoidal positional encoding.

    dim/2 sine/cosine pairs with periods spaced geometrically from
    ``min_period`` to ``max_period`` bases (0: twice the number of positions),
    so every pair varies across the window and spacings of a few bases to the
    whole window are linear read-outs of the encoding.
    """
    if dim == 0:
        return torch.zeros(0, n_positions)
    max_period = max_period or 2.0 * n_positions
    n_freq = dim // 2
    periods = torch.logspace(math.log10(min_period), math.log10(max(max_period, min_period)), n_freq,
                             dtype=torch.float64)
    angle = 2 * math.pi * torch.arange(n_positions, dtype=torch.float64)[None, :] / periods[:, None]
    enc = torch.zeros(dim, n_positions, dtype=torch.float64)
    enc[0::2] = torch.sin(angle)
    enc[1::2] = torch.cos(angle)
    return enc.to(torch.get_default_dtype())


def _global_hooks():
    """Whether any module-wide forward hook is registered (``torch.nn.modules.module.register_module_forward_hook``)."""
    return bool(_module._global_forward_hooks or _module._global_forward_pre_hooks)


_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling  # torch < 2.3: dynamo's


def _autocast_or_tracing():
    """Whether autocast (CPU or CUDA), ``torch.jit`` tracing or a graph capture (``torch.export``,
    ``torch.compile``, whose fake tensors have no storage to key a cache on) is on: the inference path then steps
    aside."""
    if torch.jit.is_tracing() or _compiling():
        return True
    try:
        return torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def _layer_norm(module, x):
    """``module(x)`` for a plain nn.LayerNorm, without nn.Module's per-call cost (nor its attribute look-ups)."""
    params = module._parameters
    return F.layer_norm(x, module.normalized_shape, params["weight"], params["bias"], module.eps)


def check_input(model, X, dtype, any_length=False):
    """What every model of this package checks of its input X: a torch tensor of shape (N, 4,
    ``model.config.input_length``) in the model's ``dtype`` (under autocast, mixed precision, or tracing, the
    input's dtype is not checked); an ArgminnError naming the model's class otherwise. With ``any_length`` (the
    motif scanner alone, which slides along any sequence), any length from the filter width up."""
    name, length = type(model).__name__, model.config.input_length
    if not isinstance(X, torch.Tensor):
        raise ArgminnError(f"{name}: input is a {type(X).__name__}; this model takes a torch tensor "
                           "(torch.from_numpy(X).float(); argminn_plugin.predict.predict converts numpy arrays)")
    if any_length:
        width = model.motif_conv.kernel_size[0]
        if X.dim() != 3 or X.shape[1] != 4 or X.shape[2] < width:
            raise ArgminnError(f"{name}: input of shape {tuple(X.shape)}; the motif scanner takes (N, 4, L) one-hot "
                               f"sequences of any length L from its filter width ({width}) up")
    elif X.dim() != 3 or X.shape[1] != 4 or X.shape[2] != length:
        raise ArgminnError(f"{name}: input of shape {tuple(X.shape)}; this model takes (N, 4, {length}) one-hot "
                           "sequences (config.input_length)")
    if X.dtype != dtype and not _autocast_or_tracing():  # autocast: mixed precision
        # a float input may ask for the model in its precision (tangermeme's dtype=torch.float64, for DeepLIFT)
        convert = f", or the model to the input's (model.to({X.dtype}))" if X.dtype.is_floating_point else ""
        raise ArgminnError(f"{name}: input of dtype {X.dtype}; this model computes in {dtype}: pass "
                           f"X.to({dtype}){convert}, or run under torch.autocast for mixed precision")


class MotifScanner(nn.Module):
    """One Conv1d (no padding) + ReLU; optionally scans reverse complements too.

    Returns (N, K, P) activations with K = 2F when scanning both strands: the
    first F channels are the filters on the forward strand, the next F the
    same filters reverse-complemented (i.e. the motif on the minus strand).
    """

    def __init__(self, n_filters, width, reverse_complement=True):
        super().__init__()
        self.conv = nn.Conv1d(4, n_filters, width)
        self.reverse_complement = reverse_complement
        self.relu = nn.ReLU()

    def rc_weight(self):
        # Complement = reverse of the ACGT axis; reverse = flip of positions.
        return self.conv.weight.flip([1, 2])

    def both_strands(self):
        """(weight, bias) of one convolution with both orientations of every filter: forward, then minus strand."""
        return torch.cat([self.conv.weight, self.rc_weight()], dim=0), torch.cat([self.conv.bias, self.conv.bias])

    def forward(self, X):
        conv = self._modules["conv"]
        if not self.reverse_complement:
            pre = conv(X)
        elif conv._forward_hooks or conv._forward_pre_hooks or _global_hooks():
            # Hooks on the conv (first-layer read-outs, knock-outs) see it run on each strand: on X, then on
            # its reverse complement, whose output flipped back is the minus strand's (the same numbers as
            # the merged convolution's second half).
            pre = torch.cat([conv(X), conv(X.flip([1, 2])).flip([2])], 1)
        else:  # one convolution with both orientations of every filter
            pre = F.conv1d(X, *self.both_strands())
        return self.relu(pre)


_SCANNER_FORWARD = MotifScanner.forward  # a forward patched onto the class later is not the merged convolution


class MemoryAttentionLayer(nn.Module):
    """One query per head from the memory stream; keys/values from the tokens.

    The key bias is kept for the parameter layout of the design but has no
    effect (it adds the same constant to every score of a head, which softmax
    ignores), so it receives no gradient.
    """

    def __init__(self, token_dim, stream_dim, n_heads, head_dim, sink_logit=None):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        # ModelConfig.attention_sink: a learned token beside the positions and a learned logit per head
        # added to its score, starting at ``sink_logit`` (no draw from the random stream).
        self.sink = self.sink_bias = None
        if sink_logit is not None:
            self.sink = nn.Parameter(torch.zeros(token_dim))
            self.sink_bias = nn.Parameter(torch.full((n_heads,), float(sink_logit)))
        self.query = nn.Linear(stream_dim, n_heads * head_dim)
        self.key = nn.Linear(token_dim, n_heads * head_dim)
        self.value = nn.Linear(token_dim, n_heads * head_dim)
        # The two products of attention are BilinearOp modules, which carry
        # tangermeme's DeepLIFT rule for products of two input-dependent terms.
        self.score_op = BilinearOp()  # matmul
        self.softmax = nn.Softmax(dim=-1)
        self.mix_op = BilinearOp()  # matmul
        self.out = nn.Linear(n_heads * head_dim, token_dim)
        self.norm1 = nn.LayerNorm(token_dim)
        self.mlp_in = nn.Linear(token_dim, stream_dim)
        self.mlp_act = nn.ReLU()
        self.mlp_out = nn.Linear(stream_dim, stream_dim)
        self.norm2 = nn.LayerNorm(stream_dim)

    def fold(self):
        """(w_qk, b_qk, w_ov, b_ov): the query folded into token space and value + output folded into one map."""
        h, e, d = self.n_heads, self.head_dim, self.key.in_features
        scale = 1.0 / math.sqrt(e)
        # Query in token space, per head: W_k^T (W_q s + b_q) / sqrt(e) -> one (H*D, S) matrix and (H*D) bias.
        w_kt = self.key.weight.view(h, e, d).transpose(1, 2)  # (H, D, e)
        w_qk = torch.bmm(w_kt, self.query.weight.view(h, e, -1)).reshape(h * d, -1) * scale
        b_qk = torch.bmm(w_kt, self.query.bias.view(h, e, 1)).reshape(h * d) * scale
        # out(W_v context + b_v) -> one (D, H*D) matrix: [k, h, d] = sum_e W_o[k, h, e] W_v[h, e, d].
        w_ov = torch.bmm(self.out.weight.view(d, h, e).transpose(0, 1), self.value.weight.view(h, e, d))
        w_ov = w_ov.transpose(0, 1).reshape(d, h * d)
        b_ov = torch.addmv(self.out.bias, self.out.weight, self.value.bias)
        return w_qk, b_qk, w_ov, b_ov

    def forward(self, stream, tokens):
        """stream (N, S), tokens (N, D, P) -> new stream (N, S), attention (N, H, P).

        Computed without materialising keys and values per position (same
        parameters, same result): with k_p = W_k t_p + b_k, the score
        q . k_p = (W_k^T q) . t_p + q . b_k, and the last term is the same at
        every position, so softmax drops it; with v_p = W_v t_p + b_v and
        attention weights summing to one, sum_p a_p v_p = W_v (sum_p a_p t_p)
        + b_v. Both products then run on the D-dim tokens, not on H x head_dim
        keys/values, which makes a layer's cost O(N H P D) instead of
        O(N P D H head_dim).

        With a sink, its token is one more position for the scores (its
        score raised by the head's sink logit) and the mix; the attention
        returned covers the real positions only.
        """
        n, h, d = stream.shape[0], self.n_heads, tokens.shape[1]
        p = tokens.shape[2]
        if self.sink is not None:
            tokens = torch.cat([tokens, self.sink.view(1, d, 1).expand(n, d, 1)], 2)
        w_qk, b_qk, w_ov, b_ov = self.fold()
        q_tok = F.linear(stream, w_qk, b_qk).view(n, h, d)
        scores = self.score_op(q_tok, tokens)  # (N, H, D) x (N, D, P) -> (N, H, P)
        if self.sink is not None:
            scores = scores + F.pad(self.sink_bias.view(1, h, 1), (p, 0))
        attn = self.softmax(scores)
        # (N, H, P) x (N, P, D) -> (N, H, D): attention-weighted tokens per head (a transposed view, no copy)
        context = self.mix_op(attn, tokens.transpose(1, 2))
        return stream + self.update(F.linear(context.reshape(n, h * d), w_ov, b_ov)), attn[..., :p]

    def update(self, mixed):
        """The stream update from the output-projected attention mix: LayerNorm, MLP, LayerNorm."""
        return self.norm2(self.mlp_out(self.mlp_act(self.mlp_in(self.norm1(mixed)))))


class ARGMINN(nn.Module):
    """Motif scanner + memory-stream attention syntax builder + linear head."""

    architecture = "argminn"

    def __init__(self, config=None, **kwargs):
        super().__init__()
        if config is None:
            config = ModelConfig.from_dict(kwargs)
        else:
            if isinstance(config, dict):
                config = ModelConfig.from_dict(config)
            if not isinstance(config, ModelConfig):
                raise ArgminnError(f"ARGMINN: config must be a ModelConfig or a dict of its keys, "
                                   f"got {type(config).__name__}")
            if kwargs:
                config = config.replace(**kwargs)
        self.config = config
        c = config
        self.scanner = MotifScanner(c.n_filters, c.filter_width, c.scan_reverse_complement)
        n_channels = c.n_filters * (2 if c.scan_reverse_complement else 1)
        self.norm = nn.BatchNorm1d(n_channels) if c.batch_norm else nn.Identity()
        self.register_buffer("pos_enc", sinusoidal_encoding(c.n_positions, c.pos_enc_dim, c.pos_enc_min_period,
                                                             c.pos_enc_max_period), persistent=False)
        generator = torch.Generator().manual_seed(c.memory_seed)
        self.register_buffer("memory", torch.randn(c.stream_dim, generator=generator), persistent=False)
        self.token_proj = nn.Linear(n_channels + c.pos_enc_dim, c.token_dim)
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(c.token_dim, c.stream_dim, c.n_heads, c.head_dim,
                                 math.log(c.n_positions) if c.attention_sink else None)
            for _ in range(c.n_layers)
        )
        self.final_norm = nn.LayerNorm(c.stream_dim)
        self.head = nn.Linear(c.stream_dim, c.n_tasks)
        self._fold_cache = None

    def _run(self, X, keep):
        check_input(self, X, self._buffers["pos_enc"].dtype)
        folded = self._folded() if X.shape[0] else None  # an empty batch: the module path, (0, T) logits
        if folded is not None:
            return self._run_folded(X, keep, folded)
        acts = self.scanner(X)
        read, flipped = self._strand_read(acts)
        normed = self.norm(read)
        # tokens (N, D, P) = W_act . activations + (W_pos . encoding + b): the
        # positional part does not depend on the input, so it is computed once.
        n, k = normed.shape[:2]
        weight = self.token_proj.weight
        # A batched product keeps the (N, K, P) layout (a broadcast matmul would
        # copy the activations); the position term is added in place.
        tokens = torch.bmm(weight[:, :k].expand(n, -1, -1), normed)
        tokens += torch.addmm(self.token_proj.bias[:, None], weight[:, k:], self.pos_enc)
        stream = self.memory.unsqueeze(0).expand(X.shape[0], -1)
        attention = []
        for layer in self.layers:
            stream, attn = layer(stream, tokens)
            if keep:
                attention.append(attn)
        logits = self.head(self.final_norm(stream))
        return logits, acts, self._input_frame(attention, flipped)

    def _strand_read(self, acts):
        """(the (N, K, P) activations the syntax builder reads, a (N,) mask of the sequences read on their minus
        strand or None): with ``config.canonical_strand``, each sequence on the strand of its strongest
        activation (on a tie, such as an inverted repeat, the strand with the larger total activation; as given
        if that ties too, as a sequence that is its own reverse complement does); its minus strand's activations
        are its own with the strands' channels swapped and the positions reversed (the scanner's
        reverse-complement channels). Both tests change sign with the strand, so a sequence and its reverse
        complement are read alike. The choice takes no gradient."""
        if not getattr(self.config, "canonical_strand", False):  # (a config pickled before the key existed)
            return acts, None
        n, k, p = acts.shape
        traced = torch.jit.is_tracing() or _compiling()  # a graph capture: no branch on the data
        with torch.no_grad():
            strands = acts.reshape(n, 2, (k // 2) * p)  # the forward strand's channels, then the minus strand's
            peak = strands.amax(-1)
            top = peak[:, 1] - peak[:, 0]
            flipped, tie = top > 0, top == 0
            if traced or tie.any():  # (the totals only then: each reduction costs as much as the choice)
                total = strands.sum(-1)
                flipped = flipped | (tie & (total[:, 1] > total[:, 0]))

        def other_strand(a):  # (M, K, P) activations read on their minus strand (M may be 0)
            return a.reshape(a.shape[0], 2, k // 2, p).flip(1, 3).reshape(a.shape[0], k, p)

        if traced:
            return torch.where(flipped[:, None, None], other_strand(acts), acts), flipped
        rows = flipped.nonzero().squeeze(1)
        if not len(rows):
            return acts, flipped
        # Only the flipped rows are moved: a torch.where over the batch took 2-9x as long at 1024 sequences
        # (with the steady allocator and glibc's default).
        read = acts.clone()
        read.index_copy_(0, rows, other_strand(acts.index_select(0, rows)))
        return read, flipped

    @staticmethod
    def _input_frame(attention, flipped):
        """Each layer's (N, H, P) attention in the input's frame: reversed for the sequences read on their minus
        strand (:meth:`_strand_read`)."""
        if flipped is None:
            return attention
        mask = flipped[:, None, None]
        return [torch.where(mask, a.flip(-1), a) for a in attention]

    # ------------------------------------------------------- inference path
    #
    # In eval mode with autograd off (tangermeme's predict, Kipoi, the CLI)
    # the same outputs are computed from the same parameters with the batch
    # norm, the token projection and each layer's query/key/value/output maps
    # merged into a few small matrices, so no (N, D, P) token tensor is built.
    # Since eval-mode batch norm is affine per channel, a token is
    # t_p = A a_p + B e_p + c (a_p: the scanner's activations at p, e_p: the
    # positional encoding, c the same at every position). A head's score
    # q . t_p = (A^T q) . a_p + (B^T q) . e_p + q . c, and softmax drops the
    # last term; its mix sum_p w_p t_p = A (sum_p w_p a_p) + B (sum_p w_p e_p)
    # + c, as the weights w_p sum to one. Each layer then works on the K
    # activation channels and the positional encoding's dims, with the
    # encoding's products as single matrix products shared by the batch.
    # (For small batches of short sequences the two are stacked into one
    # (N, K + E, P) tensor instead: see _STACK_MAX_POSITIONS.) The modules
    # those matrices replace are skipped, and the other modules after the scanner (softmax, norms, MLP,
    # head) are applied as functions with their own parameters, which saves
    # nn.Module's per-call cost (at 200 bp and batches of 16-64: 10-15% of a
    # pass in a tight loop, 2-8% with the CNN timed in turns). So the path is
    # taken only when each of those modules is the plain module it was built
    # as, in eval mode, and none of them (nor a layer as a whole) carries a
    # forward hook (DeepLIFT, ablations); otherwise, and under autocast or
    # jit tracing, the module path runs.
    # The scanner is called as a module when it, its conv or its ReLU carries a hook
    # (motif knock-outs), so such hooks apply on either path, and whenever it
    # is not the plain two-strand MotifScanner (one strand, another class or
    # forward, another conv or activation); otherwise its convolution runs
    # with both strands' weights merged once (not on every pass). The first
    # layer's query comes from the fixed memory, so its scores against the
    # positional encoding are computed once too. (Those two, with parameters
    # read from ``_parameters`` and a flat integer key for the cache: 0.89-0.94x
    # the time a pass at batches of 16-64, 200 bp, two threads; with the
    # stacking below as well, 0.79-0.93x.)

    # Up to this many positions in a batch (N x P) the folded path stacks the activations and the encoding
    # (one product for a layer's scores and one for its mix); above it, it keeps them apart (the encoding's
    # products shared by the batch), since copying the encoding into every sequence then costs more than the
    # saved operations. Measured at 200-5,000 bp, batches of 16-64 (same process, in turns): stacking took
    # 0.79-0.97x the time at 3,000-6,100 positions on one or two threads (0.72x at 7,900: 500 bp, batch 16,
    # two threads); from 12,000 up, 1.04-1.46x on one thread, and on two 0.80-1.12x up to 64,000 and
    # 1.14-1.39x beyond.
    _STACK_MAX_POSITIONS = 8192

    _CALLED = {"softmax": nn.Softmax, "norm1": nn.LayerNorm, "mlp_in": nn.Linear, "mlp_act": nn.ReLU,
               "mlp_out": nn.Linear, "norm2": nn.LayerNorm}

    def _bypassed_modules(self):
        """(the layers and the modules the merged matrices replace, the modules the path applies as functions,
        [scanner, its conv, its ReLU] when the scanner can run as one merged convolution or else []),
        or None where one of the first two kinds is not the plain module."""
        # read from _modules directly: nn.Module attribute look-ups are slow next to a forward pass of ~1 ms
        top = self._modules
        norm, proj, layers = top["norm"], top["token_proj"], list(top["layers"]._modules.values())
        plain_norm = type(norm) is nn.Identity or (
            type(norm) is nn.BatchNorm1d and norm.affine and norm.running_mean is not None)
        if not plain_norm or type(proj) is not nn.Linear or any(type(m) is not MemoryAttentionLayer for m in layers):
            return None
        linears = [layer._modules[name] for layer in layers for name in ("query", "key", "value", "out")]
        products = [layer._modules[name] for layer in layers for name in ("score_op", "mix_op")]
        if any(type(m) is not nn.Linear for m in linears) or any(type(m) is not BilinearOp for m in products):
            return None
        called = [top["final_norm"], top["head"]]
        if type(called[0]) is not nn.LayerNorm or type(called[1]) is not nn.Linear:
            return None
        for layer in layers:
            for name, cls in self._CALLED.items():
                module = layer._modules[name]
                if type(module) is not cls or (cls is nn.Softmax and module.dim not in (-1, 2)):
                    return None
                called.append(module)
        # The scanner, when it is the plain two-strand MotifScanner, runs as one convolution with the merged
        # weights of both strands (cached with the rest) unless it, its conv or its ReLU carries a hook; its modules
        # are keyed (a replaced conv drops the cache) but never disable the path.
        scanner = top["scanner"]
        scan = []
        if type(scanner) is MotifScanner and scanner.reverse_complement is True and \
                type(scanner).forward is _SCANNER_FORWARD and "forward" not in scanner.__dict__:
            conv, relu = scanner._modules["conv"], scanner._modules["relu"]
            if type(conv) is nn.Conv1d and type(relu) is nn.ReLU:
                scan = [scanner, conv, relu]
        return [norm, proj, *layers, *linears, *products], called, scan

    def train(self, mode=True):
        # Every eval() drops the inference cache (one re-merge, ~1 ms, per call;
        # tangermeme calls it on every predict): edits that bypass version
        # counters (through ``.data``, fused optimizers) of the attention maps,
        # the token projection, the memory or the positional encoding are seen
        # after it (or a forward pass with autograd on). The scanner's and the
        # batch norm's tensors, where knock-outs are made, are compared by
        # value on every pass (see ``_folded``).
        self._fold_cache = None
        return super().train(mode)

    def __getstate__(self):  # pickles (torch.save(model), deepcopy) carry no cache
        return {**super().__getstate__(), "_fold_cache": None}

    def _folded(self):
        """The merged inference matrices, or None where the folded path must not run.

        None in training mode, with autograd on (which also drops the cache:
        an optimizer step may follow), under autocast or jit tracing, or when a
        module the merged matrices replace is not the plain module, is in
        training mode or carries a forward hook. Cached while none of those
        modules (nor the scanner, its conv and ReLU, when it runs merged) and
        none of their parameters and buffers change, nor this module's own
        buffers (the memory and the positional encoding): the cache is
        keyed on the modules, the tensors themselves, their storage and their
        in-place version counters, so an optimizer step, ``load_state_dict``,
        ``.to()`` or an in-place edit invalidates it; the scanner's and the
        batch norm's tensors are compared by value as well (a ``.data`` edit
        bumps no counter), and ``eval()`` drops the cache. Not cached for inference
        tensors (``torch.inference_mode``), which have no version counter.
        """
        if self.training or torch.is_grad_enabled() or _global_hooks() or _autocast_or_tracing():
            self._fold_cache = None  # a pass that may be followed by an optimizer step
            return None
        found = self._bypassed_modules()
        if found is None:
            return None
        merged, called, scan = found
        for group in (merged, called):
            for m in group:
                if m.training or m._forward_hooks or m._forward_pre_hooks:
                    return None
        # The cache depends on these only (the called modules' parameters are read on each pass), and on this
        # module's own buffers: the memory and the positional encoding (the first layer's query is merged too).
        modules = merged + scan
        tensors = [t for m in modules for t in (*m._parameters.values(), *m._buffers.values()) if t is not None]
        tensors += [t for t in self._buffers.values() if t is not None]
        if torch.is_inference_mode_enabled():
            return self._fold(scan)
        try:  # flat ints, compared at C speed; the cache keeps the tensors alive, so their ids are not reused
            key = [x for t in tensors for x in (id(t), t._version, t.data_ptr())]
        except RuntimeError:  # inference tensors have no version counter
            if any(t.is_inference() for t in tensors):
                return self._fold(scan)
            raise
        # The scanner's and the norm's few small tensors, where filters are knocked out (often through .data,
        # which no version counter sees), are compared by value too: the pairs (tensor, copy) are kept with the
        # cache (the key holds the tensors' ids), ~10 us a pass.
        cached = getattr(self, "_fold_cache", None)  # None too in a model pickled before the cache existed
        if cached is None or cached[0] != modules or cached[1] != key or not all(  # modules compare by identity
                torch.equal(t, copy) for t, copy in cached[4]):
            watched = [t for m in merged[:1] + scan[1:2]  # the norm, and the conv when it runs merged
                       for t in (*m._parameters.values(), *m._buffers.values()) if t is not None]
            self._fold_cache = cached = (modules, key, self._fold(scan), tensors,
                                         [(t, t.detach().clone()) for t in watched])
        return cached[2]

    def _fold(self, scan=()):
        """(the scanner's two-strand weight and bias or None, the first layer's constants, per layer the merged maps).

        The first layer's query comes from the memory, the same for every
        input, so its scores against the positional encoding (and the sink)
        are one (H, P [+ 1]) matrix, and only the (H, K) activation part of
        its query meets the batch.
        """
        k = self.token_proj.in_features - self.config.pos_enc_dim  # scanner channels
        weight = self.token_proj.weight
        if isinstance(self.norm, nn.BatchNorm1d):  # eval mode: y = scale * x + shift per channel
            scale = self.norm.weight / torch.sqrt(self.norm.running_var + self.norm.eps)
            shift = self.norm.bias - self.norm.running_mean * scale
        else:
            scale, shift = torch.ones_like(weight[0, :k]), torch.zeros_like(weight[0, :k])
        basis = torch.cat([weight[:, :k] * scale, weight[:, k:]], 1)  # (D, K + E): [A | B]
        offset = self.token_proj.bias + weight[:, :k] @ shift  # c
        layers = []
        for layer in self.layers:
            w_qk, b_qk, w_ov, b_ov = layer.fold()
            h, d = layer.n_heads, basis.shape[0]
            w_qk, w_ov = w_qk.view(h, d, -1), w_ov.view(-1, h, d)
            cols = basis
            if layer.sink is not None:
                # The sink token s is one more column, s - c: its score q . s against q . t_p for a position
                # is q . (s - c) once q . c is dropped from both, and with its share w_s the mix is
                # A (sum_p w_p a_p) + B (sum_p w_p e_p) + c + w_s (s - c).
                cols = torch.cat([basis, (layer.sink - offset)[:, None]], 1)
            # query per head in [activations | encoding (| sink)] space: [A | B]^T q
            w_q = torch.matmul(cols.t(), w_qk).reshape(-1, w_qk.shape[-1])  # (H, K + E, S) -> (H (K + E), S)
            b_q = b_qk.view(h, d) @ cols
            if layer.sink is not None:
                b_q = b_q + F.pad(layer.sink_bias[:, None], (cols.shape[1] - 1, 0))  # the sink's logit
            # the output map applied to [A | B] mixes, with the offset c folded into its bias
            w_o = torch.matmul(w_ov, cols).reshape(w_ov.shape[0], -1)  # (D, H, K + E) -> (D, H (K + E))
            b_o = b_ov + (w_ov @ offset).sum(1)
            layers.append((w_q, b_q.reshape(-1), w_o, b_o))
        w_q, b_q = layers[0][:2]
        q = F.linear(self.memory, w_q, b_q).view(self.layers[0].n_heads, -1)  # (H, K + E [+ 1])
        e = self.pos_enc.shape[0]
        const = torch.cat([q[:, k:k + e] @ self.pos_enc, q[:, k + e:]], 1)  # (H, P [+ 1: the sink's score])
        first = (q[:, :k].contiguous(), const)
        scanner = self.scanner.both_strands() if scan else None
        return scanner, first, layers

    def _run_folded(self, X, keep, folded):
        scan, (q_first, const_first), layers = folded
        scanner = self._modules["scanner"]
        if scan is not None and not any(m._forward_hooks or m._forward_pre_hooks for m in (
                scanner, scanner._modules["conv"], scanner._modules["relu"])):
            acts = F.relu(F.conv1d(X, *scan))  # MotifScanner.forward with both strands' weights merged once
        else:
            acts = scanner(X)  # (N, K, P); hooks on the scanner (motif knock-outs) apply
        scanned = acts
        acts, flipped = self._strand_read(scanned)  # what the layers read
        n, k, p = acts.shape
        enc = self.pos_enc  # (E, P)
        e = enc.shape[0]
        # Small batches of short sequences: the activations and the encoding stacked into one (N, K + E, P)
        # tensor, so a layer's scores and mix are one product each (see _STACK_MAX_POSITIONS).
        stacked = torch.cat([acts, enc.expand(n, e, p)], 1) if n * p <= self._STACK_MAX_POSITIONS else None
        stacked_t = stacked.transpose(1, 2) if stacked is not None else None  # for the mixes: (N, P, K + E)
        stream = None  # the memory, until the first layer adds to it
        attention = []
        for i, (layer, (w_q, b_q, w_o, b_o)) in enumerate(zip(self.layers, layers)):
            m = layer._modules
            h = layer.n_heads
            sink = layer.sink is not None  # without one, no slicing (each view costs a few us at small batches)
            if i == 0:  # the query from the memory: its encoding and sink scores are constants (see _fold)
                # (H, P) + (H, K) x (N, K, P) -> (N, H, P) in one product
                scores = torch.baddbmm((const_first[:, :p] if sink else const_first).expand(n, h, p),
                                       q_first.expand(n, h, k), acts)
                if sink:
                    scores = torch.cat([scores, const_first[:, p:].expand(n, h, 1)], 2)
            else:
                q = F.linear(stream, w_q, b_q).view(n, h, -1)  # (N, H, K + E [+ 1: the sink's score])
                q_pos = q[:, :, :k + e] if sink else q
                if stacked is not None:
                    scores = torch.bmm(q_pos, stacked)  # (N, H, P)
                else:
                    scores = torch.baddbmm(torch.matmul(q_pos[:, :, k:], enc), q_pos[:, :, :k], acts)
                if sink:
                    scores = torch.cat([scores, q[:, :, k + e:]], 2)
            attn = torch.softmax(scores, -1)
            if sink:
                attn, sunk = attn[:, :, :p], attn[:, :, p:]  # sunk: the sink's share
            if stacked is not None:  # (N, H, K + E [+ 1])
                mixed = torch.bmm(attn, stacked_t)
                mixed = torch.cat([mixed, sunk], 2) if sink else mixed
            else:
                parts = [torch.bmm(attn, acts.transpose(1, 2)), torch.matmul(attn, enc.t())]
                mixed = torch.cat(parts + [sunk] if sink else parts, 2)
            mixed = F.linear(mixed.reshape(n, -1), w_o, b_o)
            # layer.update, applied as functions (see above); parameters read from _parameters (no __getattr__)
            x = _layer_norm(m["norm1"], mixed)
            mlp_in, mlp_out = m["mlp_in"]._parameters, m["mlp_out"]._parameters
            x = F.linear(F.relu(F.linear(x, mlp_in["weight"], mlp_in["bias"])), mlp_out["weight"], mlp_out["bias"])
            x = _layer_norm(m["norm2"], x)
            stream = (self.memory + x) if stream is None else stream + x
            if keep:
                attention.append(attn)
        head = self._modules["head"]._parameters
        logits = F.linear(_layer_norm(self._modules["final_norm"], stream), head["weight"], head["bias"])
        return logits, scanned, self._input_frame(attention, flipped)

    def forward(self, X):
        """(N, 4, L) one-hot -> (N, T) logits."""
        return self._run(X, keep=False)[0]

    def interims(self, X):
        """Everything interpretation reads, from one forward pass.

        Returns a dict with
        - ``logits`` (N, T);
        - ``raw_activations`` (N, K, P): post-ReLU, pre-norm scanner output
          (K = 2F with reverse-complement scanning: forward then minus strand);
        - ``activations`` (N, F, P): per filter, the stronger of the two strands;
        - ``strand`` (N, F, P): 0 where the forward strand won, 1 where minus;
        - ``attention``: list over layers of (N, heads, P) attention weights
          (with an attention sink, a row sums to 1 minus the sink's share).
        """
        logits, acts, attention = self._run(X, keep=True)
        best, strand = self._best_strand(acts)
        return {"logits": logits, "raw_activations": acts, "activations": best,
                "strand": strand, "attention": attention}

    def _best_strand(self, acts):
        f = self.config.n_filters
        if self.config.scan_reverse_complement:
            return torch.stack([acts[:, :f], acts[:, f:]], dim=0).max(dim=0)
        return acts, torch.zeros_like(acts, dtype=torch.long)

    @property
    def motif_conv(self):
        """The Conv1d whose filters are the motifs (shared read-out interface with the baselines)."""
        return self.scanner.conv

    def motif_activations(self, X):
        """(activations (N, F, P), strand (N, F, P)) from the scanner alone (no attention); X of any length
        from the filter width up."""
        check_input(self, X, self._buffers["pos_enc"].dtype, any_length=True)
        return self._best_strand(self.scanner(X))

    def motif_knockout(self, f):
        """(module, channels) whose output channels are zeroed to knock filter ``f`` out (both strands)."""
        channels = [f, f + self.config.n_filters] if self.config.scan_reverse_complement else [f]
        return self.scanner, channels

    def filter_column_magnitudes(self):
        """(K, W) sum of |weight| per filter column, matching ``raw_activations``."""
        mags = self.scanner.conv.weight.abs().sum(1)
        if self.config.scan_reverse_complement:
            mags = torch.cat([mags, mags.flip(1)], dim=0)
        return mags


class StrandAveraged(nn.Module):
    """A model read on both strands: each sequence's logits (N, T) are the mean of the model's logits for the
    sequence and for its reverse complement, from one pass of the wrapped model over a batch of both.

    A sequence and its reverse complement then score the same. This costs the wrapped model's inference (time and
    memory) on twice the rows; the model, its training and its weights are unchanged (wrap it where it is read:
    ``predict``, ``evaluate``, tangermeme). The two strands of a row sit next to each other in the batch the
    wrapped model sees, so tangermeme's ``deep_lift_shap``, which runs the inputs and their references as the two
    halves of one batch, still pairs each input with its own reference, and its attributions sum to the
    averaged output's difference. Interpretation that reads the model's insides (motifs, instances) takes the
    wrapped model itself (``.model``). The wrapper's training mode is the wrapped model's, so a caller that puts
    the wrapper back in the mode it found (tangermeme's functions do) leaves the model in its own.
    """

    def __init__(self, model):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ArgminnError(f"StrandAveraged: wraps a torch model (an nn.Module taking (N, 4, L) one-hot "
                               f"sequences), not a {type(model).__name__}")
        self.model = model

    @property
    def training(self):
        """The wrapped model's mode, read from it each time (a flag of the wrapper's own would go stale when the
        model's mode changes)."""
        model = self.__dict__.get("_modules", {}).get("model")
        return self.__dict__.get("_own_mode", True) if model is None else model.training

    @training.setter
    def training(self, mode):  # nn.Module's train() sets it, then the model's mode through the children
        self.__dict__["_own_mode"] = mode

    def _config(self):
        """The wrapped model's config, also through a DistributedDataParallel (``.module``); None if it has none."""
        return getattr(getattr(self.model, "module", self.model), "config", None)

    @property
    def config(self):
        """The wrapped model's config (input length, task names), which ``predict`` and ``evaluate`` read (a model
        of this package has one)."""
        config = self._config()
        if config is None:
            raise ArgminnError(f"StrandAveraged: the wrapped {type(self.model).__name__} has no config (input "
                               "length, task names); call it on (N, 4, L) tensors directly")
        return config

    def forward(self, X):
        """(N, 4, L) one-hot -> (N, T) logits averaged over the two strands."""
        config = self._config()
        if not (isinstance(X, torch.Tensor) and X.dim() == 3 and X.shape[1] == 4) or (
                config is not None and X.shape[2] != config.input_length):
            return self.model(X)  # not the model's one-hot sequences: its own error names the problem as given
        n = X.shape[0]
        both = torch.stack([X, reverse_complement(X)], dim=1).flatten(0, 1)  # row i's strands at 2i and 2i + 1
        return self.model(both).unflatten(0, (n, 2)).mean(dim=1)
