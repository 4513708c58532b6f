"""The book machinery: runner, site build, environment report, benchmarks."""
