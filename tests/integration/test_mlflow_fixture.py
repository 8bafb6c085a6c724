import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.integration


def test_server_answers_and_registers(tracking_uri: str, model_name: str) -> None:
    client = MlflowClient(tracking_uri)
    client.create_registered_model(model_name)
    assert client.get_registered_model(model_name).name == model_name
