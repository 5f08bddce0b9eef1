"""How good a run is: metrics, patient bootstrap, calibration, paired comparison, tables, figures."""
