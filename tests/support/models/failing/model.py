"""A python-backend model that loads but fails every inference (a bad new version)."""


class TritonPythonModel:
    def execute(self, requests):
        raise RuntimeError("this model version is broken: NaN in layer 3")
