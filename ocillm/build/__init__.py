"""Compile a Modelfile into an image in the local store."""

from ocillm.build.builder import BuildResult, build_image
from ocillm.build.lint import lint_file

__all__ = ["BuildResult", "build_image", "lint_file"]
