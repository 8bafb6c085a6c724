"""The training job: one run trains, logs, registers and (maybe) promotes a model."""
