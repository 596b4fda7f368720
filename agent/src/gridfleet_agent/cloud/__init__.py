"""Cloud connectors of the gateway: MQTT to AWS IoT Core, Azure IoT Hub or a generic broker."""

from gridfleet_agent.cloud.mqtt import PLATFORMS, BrokerConfig, CloudLink, Conventions

__all__ = ["PLATFORMS", "BrokerConfig", "CloudLink", "Conventions"]
