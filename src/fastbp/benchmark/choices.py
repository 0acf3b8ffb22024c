"""The comma-separated name lists that `fastbp bench` options take (--workloads, --peers,
--optimizer): checked once, in the order given, each name once."""


def pick(spec, table, option, keywords):
    """spec: 'a,b,c' or one of `keywords` ({word: [items]}, None/'' meaning the first one).
    -> [items of table]; ValueError naming the option and an unknown name."""
    if spec in (None, ""):
        return list(next(iter(keywords.values())))
    if spec in keywords:
        return list(keywords[spec])
    chosen = []
    for name in (s.strip() for s in spec.split(",")):
        if name not in table:
            words = ", ".join(repr(k) for k in keywords)
            raise ValueError(f"{option}: unknown {option.lstrip('-').rstrip('s')} {name!r}; expected names from "
                             f"{list(table)} (or {words})")
        if table[name] not in chosen:
            chosen.append(table[name])
    return chosen
