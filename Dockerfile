# The operator image the Helm chart runs (operator.image). This machine has no
# container runtime, so the image is not built or tested here: the chart tests
# run the same `millrace operator` command as a local process (docs/testing.md).
FROM python:3.12-slim
COPY pyproject.toml README.md /src/
COPY operator /src/operator
RUN pip install --no-cache-dir /src && rm -rf /src
USER 65532:65532
ENTRYPOINT ["millrace"]
CMD ["operator"]
