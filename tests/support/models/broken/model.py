"""A python-backend model that cannot load: Triton reports its error."""


class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("weights file is corrupt: expected 4 tensors, found 0")
