"""The ``flow_rollup`` table behind ``flowsAggregate``: its table (:mod:`.tables`) and its
maintenance (:mod:`.maintain`). This ``__init__`` imports nothing, so the query layer can
read the table without loading the maintenance code (which reads the query layer)."""
