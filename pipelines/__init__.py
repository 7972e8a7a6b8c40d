"""How the work is run: the SageMaker Pipeline definition and the control-plane scripts CI/CD runs."""
