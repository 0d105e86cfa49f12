from setuptools import setup; setup(cffi_modules=["kdsim/machine/_build.py:ffibuilder"])
