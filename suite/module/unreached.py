"""What a CPU run of the module area leaves unreached in nn/modules/module.py and container.py, and why (see
suite/unreached.py).

Measured with ``torchconform run --area module --device cpu --coverage``.  Ranges reachable from the public API
but not yet checked are deliberately absent (they show as "not reached"):
- _call_impl's is_compiling branch: it runs only while Dynamo traces the compiled call (module.compile.call
  checks that call's outcome), where Dynamo interprets the bytecode and coverage.py sees no line run;
- the swap failures of Module._apply for a .grad and of load_state_dict (swap_tensors refusing a tensor with
  weakrefs; a Tensor subclass whose module_load returns one of its inputs -- the docs say it "should always return
  a new object", not what load_state_dict does otherwise): no documented outcome to compare yet.  The documented
  refusal, a Parameter subclass with other __slots__, is checked (module.convert.swap_refused);
- the overwrite flag's leaf assertions in Module._apply (a non-leaf Parameter or .grad), Module.to moving to the
  meta device (compute_should_use_set_data false: new Parameter objects), a NotImplementedError other than the
  meta one in Module.to.
"""
from __future__ import annotations

from suite.unreached import CUDA_ONLY, DEPRECATED, UNREACHABLE, Unreached

MOD = "nn/modules/module.py"
CT = "nn/modules/container.py"

LEGACY_BACKWARD = ("non-full backward hooks are deprecated (module.py: register_backward_hook 'This function is "
                   "deprecated in favor of register_full_backward_hook()'); the suite checks the mixing errors and one "
                   "legacy call (module.hooks.legacy_backward), not the deprecated hook's warnings")

UNREACHED = [
    Unreached(MOD, "_WrappedHook.__call__", UNREACHABLE, "a hook without its module is made only by the private "
              "_register_load_state_dict_pre_hook(hook, with_module=False); the public register_load_state_dict_pre_hook "
              "passes with_module=True, and backward hooks are wrapped with their module",
              contains="return self.hook(*args, **kwargs)"),
    # ---- accelerators
    *(Unreached(MOD, f"Module.{name}", CUDA_ONLY, f"Module.{name}() moves every tensor to that accelerator "
                                                  f"(t.{name}(device)); a CPU run has none")
      for name in ("cuda", "ipu", "xpu", "mtia")),
    # nn.parallel.replicate, the only caller, refuses CPU devices: torch/_utils.py _get_device_index 'Expected a
    # non cpu device' (the parallel area reaches it by patching torch internals, outside this area's run)
    Unreached(MOD, "Module._replicate_for_data_parallel", CUDA_ONLY, "called only by nn.parallel.replicate "
              "(DataParallel), which refuses CPU devices ('Expected a non cpu device')"),
    Unreached(MOD, "Module.zero_grad", CUDA_ONLY, "the warning for a replica made by nn.parallel.replicate "
              "(DataParallel), which refuses CPU devices ('Expected a non cpu device')",
              contains="warnings.warn("),
    Unreached(CT, "ParameterList.extra_repr", CUDA_ONLY, "the device suffix is printed for CUDA/privateuse1 tensors "
              "only (container.py: if p.device.type in ['cuda', ...])", contains="device_str = f\" ({p.device})\""),
    Unreached(CT, "ParameterDict.extra_repr", CUDA_ONLY, "the device suffix is printed for CUDA/privateuse1 tensors "
              "only (container.py: if p.device.type in ['cuda', ...])", contains="device_str = f\" ({p.device})\""),
    # ---- deprecated entry points and legacy formats
    Unreached(CT, "Container.__init__", DEPRECATED, "nn.Container warns 'nn.Container is deprecated. All of it's "
              "functionality is now implemented in nn.Module. Subclass that instead.' (container.py: Container)"),
    Unreached(MOD, "Module.__setstate__", DEPRECATED, "restores hook dicts and flags missing from a module pickled by "
              "an older torch release ('Support loading old checkpoints that don't have the following attrs')"),
    Unreached(MOD, "Module._maybe_warn_non_full_backward_hook", DEPRECATED, LEGACY_BACKWARD),
    *(Unreached(MOD, "Module._call_impl.inner", DEPRECATED, LEGACY_BACKWARD + " (a module output that is a dict or "
                "a tuple, searched for the tensor a legacy hook attaches to)", contains=text)
      for text in ("if isinstance(var, dict):", "var = var[0]")),
    Unreached(MOD, "Module._get_backward_hooks", DEPRECATED, LEGACY_BACKWARD + "; a global legacy hook is never "
              "registered: torch's process-global _global_is_full_backward_hook would then refuse full hooks for "
              "the rest of the run", contains="non_full_backward_hooks += _global_backward_hooks"),
    *(Unreached(MOD, "register_module_backward_hook", DEPRECATED, LEGACY_BACKWARD + "; registering one globally "
                "sets a process-global flag that no removal resets, refusing every later full backward hook",
                contains=text)
      for text in ("_global_is_full_backward_hook = False", "handle = RemovableHandle(_global_backward_hooks)")),
    Unreached(MOD, "register_module_full_backward_hook", DEPRECATED, "raised only after a global legacy backward hook "
              "was registered, which the suite never does (see register_module_backward_hook)"),
    # ---- internal hooks, tracing, TorchScript
    Unreached(MOD, "Module._slow_forward", DEPRECATED, "the forward path taken only while torch.jit.trace records "
              "(torch._C._get_tracing_state()); torch.jit.trace is deprecated (2.13 warns 'torch.jit.trace is "
              "deprecated. Please switch to torch.compile or torch.export')"),
    Unreached(MOD, "Module.register_buffer", UNREACHABLE, "only a torch.jit.ScriptModule refuses non-persistent "
              "buffers; TorchScript is outside the nn.Module contract checked here",
              contains="ScriptModule does not support non-persistent buffers"),
    Unreached(MOD, "Module._register_state_dict_hook", UNREACHABLE, "a private registration (used by torch's own "
              "FSDP/quantization code); the public register_state_dict_post_hook is checked"),
    Unreached(MOD, "Module.state_dict", UNREACHABLE, "a hook registered through the private _register_state_dict_hook "
              "may return a new destination; public post-hooks must return None (checked)",
              contains="if hook_result is not None:"),
    Unreached(MOD, "_has_any_global_hook", UNREACHABLE, "called only by torch.compile/dynamo to decide whether to "
              "warn about global hooks (torch/_dynamo)"),
    Unreached(MOD, "_WrappedHook.__call__", UNREACHABLE, "a load pre-hook lives in its module's own hook dict, so it "
              "cannot be called once the module is garbage collected ('You are trying to call the hook of a dead "
              "Module!')", contains="raise RuntimeError(\"You are trying to call the hook of a dead Module!\")"),
    Unreached(MOD, "Module._apply", UNREACHABLE, "an internal invariant: _parameters holds only Parameters "
              "(register_parameter and __setattr__ refuse anything else)", contains="param must be a Parameter"),
    Unreached(MOD, "Module._apply", UNREACHABLE, "an internal invariant: out_param.grad was set from the same param "
              "a line above", contains="out_param.grad must not be None"),
    *(Unreached(MOD, "Module._apply", UNREACHABLE, "an internal invariant: a Parameter and its .grad are leaves "
                "(register_parameter and __setattr__ refuse a non-leaf Parameter, module.register.non_leaf_parameter; "
                "autograd accumulates grads as leaves)", contains=text)
      for text in ("param must be a leaf tensor", "param_grad must be a leaf tensor")),
    Unreached(MOD, "_WrappedHook.__setstate__", UNREACHABLE, "a pickled _WrappedHook with with_module=True always "
              "carries its live module (__getstate__ stores self.module())", contains="raise RuntimeError("),
]
