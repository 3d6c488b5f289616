"""The application: config and target loading, gates, analysis, rollup, results, the pipeline, report, chaos.
Built on perfpipe.core; imports nothing from perfpipe.entry."""
