"""Scripts that run inside Azure ML jobs, beside mlcore: no azure-ai-ml imports here.

They adapt mlcore's outputs to what Azure ML's monitors read (MLTable, column names),
and read what Azure's data collector wrote back into mlcore's shapes. The ML itself is
mlcore's.
"""
