"""SCADA protocols of the gateway (DNP3 both ways, IEC 60870-5-104, OPC UA), beside the field stack.

`services.ProtocolServices` builds and supervises them (and the cloud links of
`gridfleet_agent.cloud`) from the gateway's signed configuration; `site` is the one point map
and the site controls they share; `status` the link states reported to the server.
"""
