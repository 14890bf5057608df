"""Compile a Modelfile into an image in the local store."""

from ocillm.build.builder import BuildResult, build_image
from ocillm.build.lint import LintResult, lint_file

__all__ = ["BuildResult", "LintResult", "build_image", "lint_file"]
