"""The training engine (loop, data, checkpoints, parallelism).

``addbench.train`` is also the API function ``addbench.api.train``: importing this package binds it as an attribute
of ``addbench`` (Python does that for every subpackage), which would shadow the function of the same name, so the
package itself is callable and forwards to the same function (``addbench.train.entry.train``, whose keywords the API
function has too): ``from addbench import train; train("dmd", "toy", "runs/x")``.
"""
import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from addbench.train.entry import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
