"""Studies that run the pipeline many times as queued DVC experiments and read the results back from
MLflow: the architecture comparison (architectures), the data-scale study and its power-law fits
(scaling, power_law), the transfer study (transfer), and their shared queueing (experiments).
Nothing in a stage imports them."""
