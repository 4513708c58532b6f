"""The book machinery, from a notebook source to the published site.

cli (``python -m rankbook run|build``), location (which book), runner
(papermill, one folder per profile, staleness), kernel (the kernels'
environment and log), site (staged Jupyter Book build, offline MathJax,
atomic swap), colab (the one setup cell), glue and source (what chapters
call: numbers into prose, package code on the page), results (the results
page), environment (the setup chapter), performance and benchmarking (the
performance page and ``benchmarks/``).
"""
