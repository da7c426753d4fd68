"""The gateway: an OpenAI / Azure OpenAI proxy that applies APIM's semantic-cache policies.

    config.py       YAML -> frozen `GatewayConfig` (backends, subscriptions, cache, APIs)
    yamlsource.py   YAML with the line of every value, `${VAR}` expansion, typed getters
    policies.py     APIM policy XML -> frozen policy objects, in document order
    expressions.py  `@(context...)` expressions -> objects with `evaluate(RequestContext)`

Configuration is loaded and checked first, without opening anything; the app
opens stores, embedders and connection pools at startup from the frozen config.
"""
