"""How a breached monitor signal is marked on its run: the tag and wording Azure's monitors use.

Source: azureml-assets, model_monitoring/components/src/model_monitor_evaluate_metrics_threshold/
evaluate_metrics_threshold.py (_generate_error_message and send_email_for_breached tag the
signal's run ``azureml_modelmonitor_threshold_breached`` with "The signal '<name>' has
failed due to one or more features violating metric thresholds. ..."). The performance
job reuses both, so one Event Grid filter catches every signal.
"""

BREACH_TAG = "azureml_modelmonitor_threshold_breached"
BREACH_WORDING = "has failed due to one or more features violating metric thresholds"
