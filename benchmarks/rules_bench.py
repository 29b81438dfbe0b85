"""Benchmark the rule matcher against a naive per-rule regex loop, in the same run.

Rerun with:

    .venv/bin/python benchmarks/rules_bench.py                # 50,000 items, 5 runs per size
    .venv/bin/python benchmarks/rules_bench.py --quick        # a smoke run in seconds
    .venv/bin/python benchmarks/rules_bench.py --json out.json   # also write the numbers

What it does:

* generates a deterministic set of items (``--items``, default 50,000; seeded
  ``random``, built-in vocabularies) of about 1 KB each, in English (half),
  Russian and French (a quarter each): a title, a plain-text content of
  sentences drawn from a few hundred inflected words per language (the domain
  terms too: terrorism/терроризм/terrorisme, sanctions, intelligence,
  assembly, ...) with set phrases ("security council", "совет безопасности",
  "conseil de sécurité") and names, a language, 0-3 tags, a feed and an author;
* generates rule sets of each size (``--rules``) from one seeded generator, the
  larger sets extending the smaller ones: terms, phrases, ``AND``/``OR``/``NOT``,
  ``NEAR/n``, ``ONEAR/n``, ``title:``/``content:``/``author:`` scopes,
  ``lang:xx AND ...``, ``tag:x AND ...``, ``prefix*``, ``=exact``, ``"a b"~n`` and
  about 1% ``/regex/``. Like real alert rules most are specific and rarely match
  (uncommon words, conjunctions, names absent from the set); some match often;
* for each size, ``--runs`` times (default 5): compiles the set with
  ``feedwatch.rules.compile_rules`` and times ``Matcher.match`` over every item;
  reports the median items/s, the median compile time and the number of
  (item, rule) matches (which must be identical in every run);
* times the naive baseline: per rule, Python ``re`` patterns approximating the
  query (case-insensitive, ``\\b`` word boundaries, a stem with ``\\w*`` for
  inflections), evaluated per item per rule in a plain loop. At 10,000 rules that
  loop would take hours over every item, so it runs on the first ``--naive-items``
  items (default 200) for as many runs as fit in ``--naive-budget`` seconds
  (at least one, at most ``--runs``); the table says how many;
* measures the memory of the compiled largest set in a fresh child process:
  the RSS growth over ``compile_rules``, and tracemalloc's peak and retained
  bytes of a second compile.

The process is single-threaded and pinned to one CPU with
``os.sched_setaffinity`` where the platform has it (the output says which).
The matcher under test is whatever ``feedwatch.rules`` is: with the
first-version matcher (words, phrases and ``OR`` only, detected by probing) the
same rules are rendered in that syntax (``AND`` becomes juxtaposition, ``NEAR``
an ``AND``, scopes and ``NOT`` are dropped), and a run that exceeds
``--budget`` seconds stops early and is the only run of its size; the output
says so. The floors of issue 3 are checked at the end: at least 10,000 items/s
with 100 rules, at least 2,000 items/s with 10,000 rules, and at least 100
times the naive loop at 10,000 rules.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

from feedwatch import __version__
from feedwatch._model import MatchInput, RuleSpec
from feedwatch.exceptions import RuleSyntaxError
from feedwatch.rules import Matcher, compile_rules

# ---------------------------------------------------------------------------- vocabularies


def _words(text: str) -> list[str]:
    """Whitespace-separated words."""
    return text.split()


def _phrases(text: str) -> list[str]:
    """``|``-separated phrases (newlines ignored)."""
    return [p.strip() for p in text.replace("\n", "").split("|") if p.strip()]


# One line per lemma: the first word is the form rules use, the others are inflected
# forms the text uses as well (a stemmer folds them; the naive baseline uses a stem).

EN_FUNCTION = _words(
    """the of and to in a on for with by is was that as at from its has have be are
were this which will an it not or their also after over more than but about into against
between during under been had would could should our they he she we all new two three"""
)

EN_LEMMAS = """\
terrorism
terrorist terrorists
counterterrorism
sanction sanctions sanctioned sanctioning
intelligence
assembly assemblies
council councils
resolution resolutions
security
minister ministers
ministry ministries
parliament parliaments parliamentary
government governments governmental
election elections elected electoral
vote votes voted voting
law laws lawful
court courts
report reports reported reporting
meeting meetings meet meets met
session sessions
delegation delegations delegate delegates
committee committees
treaty treaties
agreement agreements agree agreed
negotiation negotiations negotiate negotiated
conflict conflicts
ceasefire ceasefires
refugee refugees
migrant migrants migration
border borders
attack attacks attacked attacking
violence violent
weapon weapons
nuclear
missile missiles
drone drones
cyberattack cyberattacks
artificial
technology technologies technological
data
privacy
regulation regulations regulate regulated regulatory
economy economies economic
trade trades traded trading
tariff tariffs
budget budgets budgetary
finance finances financial financing
bank banks banking
development developments developing developed
climate
emission emissions
energy
oil
water
food
health
pandemic pandemics
vaccine vaccines vaccination
education
child children
woman women
right rights
freedom freedoms
press
journalist journalists
media
police
crime crimes criminal criminals
corruption corrupt
investigation investigations investigate investigated
prosecutor prosecutors
judge judges
prison prisons prisoner prisoners
army armies
military
troop troops
peacekeeping peacekeepers
mission missions
operation operations operational
aid
humanitarian
crisis crises
disaster disasters
flood floods flooding
drought droughts
famine
poverty
inequality inequalities
strategy strategies strategic
policy policies
reform reforms reformed
summit summits
president presidents presidential
secretary secretaries
envoy envoys
ambassador ambassadors
embassy embassies
statement statements
declaration declarations declared
convention conventions
protocol protocols
member members membership
state states
nation nations national
international
region regions regional
global
cooperation cooperate cooperated
partnership partnerships partner partners
dialogue dialogues
peace peaceful
war wars
extremism extremist extremists
radicalisation radicalization radical
recruitment recruit recruited
laundering
smuggling smuggler smugglers
trafficking trafficker traffickers
hostage hostages
kidnapping kidnapped
explosion explosions explosive explosives
bomb bombs bombing
victim victims
casualty casualties
civilian civilians
infrastructure
surveillance
espionage
spy spies
say says said
announce announces announced
call calls called
urge urges urged
condemn condemns condemned
welcome welcomes welcomed
adopt adopts adopted adoption
approve approves approved
reject rejects rejected
warn warns warned warning
concern concerns concerned
support supports supported
year years
week weeks
day days
month months
country countries
people
city cities
capital
official officials
group groups
programme programmes
project projects
fund funds funding
million
billion
public
political politics
social
local
joint
urgent
serious
important
""".splitlines()

EN_PHRASES = _phrases(
    """security council|general assembly|artificial intelligence|human rights|
united nations|european parliament|climate change|counter terrorism|money laundering|
foreign fighters|prime minister|foreign affairs|rule of law|civil society|sustainable development|
member states|secretary general|peace process|arms control|organised crime"""
)

RU_FUNCTION = _words(
    """и в на с по о что не для из к от за как это а также его её их был была были
будет при до после между об со во же то но или уже ещё все всех этот этой этих который которые
года году"""
)

RU_LEMMAS = """\
терроризм терроризма терроризму терроризмом терроризме
террорист террористы террористов террористами
санкция санкции санкций санкциям санкциями санкциях санкцию
разведка разведки разведку разведкой
ассамблея ассамблеи ассамблею ассамблеей
совет совета совету советом совете
резолюция резолюции резолюций резолюцию резолюцией
безопасность безопасности безопасностью
министр министра министры министров министром
министерство министерства министерством
парламент парламента парламенте парламентом парламентский парламентской
правительство правительства правительством правительстве
выборы выборов выборах
голосование голосования голосовании
закон закона законы законов законе законом
суд суда суде судом суды
доклад доклада докладе докладом доклады
заседание заседания заседании заседаний
сессия сессии сессию
делегация делегации делегаций делегацию
комитет комитета комитете комитетом
договор договора договоре договором
соглашение соглашения соглашений соглашением
переговоры переговоров переговорах
конфликт конфликта конфликте конфликтов
беженец беженцы беженцев беженцам
миграция миграции мигранты мигрантов
граница границы границе границ
нападение нападения нападений нападении
насилие насилия насилием
оружие оружия оружием
ядерный ядерного ядерной ядерные
ракета ракеты ракет
беспилотник беспилотники беспилотников
кибератака кибератаки кибератак
искусственный искусственного искусственным
технология технологии технологий технологиями
данные данных данными
регулирование регулирования регулированием
экономика экономики экономике экономический экономического
торговля торговли торговлей
бюджет бюджета бюджете бюджетом
финансирование финансирования финансированием
банк банка банки банков
развитие развития развитием
климат климата климатический климатической
энергия энергии энергетический
нефть нефти
вода воды воде
здравоохранение здравоохранения
пандемия пандемии
образование образования
ребёнок дети детей детям
женщина женщины женщин
право права прав правам
свобода свободы свобод
пресса прессы
журналист журналисты журналистов
полиция полиции
преступление преступления преступлений преступность преступности
коррупция коррупции
расследование расследования расследовании
прокурор прокурора прокуратура
тюрьма тюрьмы тюрьме
армия армии армией
военный военные военных
миротворец миротворцы миротворческий миротворческой
миссия миссии миссию
операция операции операций
помощь помощи помощью
гуманитарный гуманитарной гуманитарные
кризис кризиса кризисе кризисов
стратегия стратегии стратегию
политика политики политикой
реформа реформы реформ
саммит саммита саммите
президент президента президентом
секретарь секретаря секретарём
посол посла послы
заявление заявления заявлении
декларация декларации
конвенция конвенции конвенцию
государство государства государств государствами
международный международного международной международные
региональный региональной региона регионе
сотрудничество сотрудничества сотрудничеству
партнёрство партнёрства
диалог диалога диалоге
мир мира миру мирный мирного
война войны войне войной
экстремизм экстремизма экстремистский экстремистов
радикализация радикализации
вербовка вербовки
отмывание отмывания
контрабанда контрабанды
заложник заложники заложников
взрыв взрыва взрывы взрывов
жертва жертвы жертв
мирные мирных
инфраструктура инфраструктуры
наблюдение наблюдения
шпионаж шпионажа
заявил заявила заявили
объявил объявила
призвал призвала призвали
осудил осудила осудили
приветствовал приветствовали
принял приняла приняли
одобрил одобрили
отклонил отклонили
предупредил предупредили
обеспокоенность обеспокоенности
поддержка поддержки поддержал поддержали
год года лет
неделя недели
день дня дней
месяц месяца месяцев
страна страны стран странах
люди людей
город города городе
столица столицы
представитель представители представителей
группа группы групп
программа программы программ
проект проекта проектов
фонд фонда фонды
миллион миллиона миллионов
миллиард миллиарда миллиардов
общественный общественной
политический политической
социальный социальной
местный местных
совместный совместной
срочный срочные
серьёзный серьёзной
важный важной
межпарламентский межпарламентской
содружество содружества
""".splitlines()

RU_PHRASES = _phrases(
    """совет безопасности|генеральная ассамблея|искусственный интеллект|права человека|
организация объединённых наций|европейский парламент|изменение климата|борьба с терроризмом|
отмывание денег|иностранные боевики|премьер министр|министерство иностранных дел|
верховенство права|гражданское общество|устойчивое развитие|государства участники|
генеральный секретарь|мирный процесс|контроль над вооружениями|межпарламентская ассамблея"""
)

FR_FUNCTION = _words(
    """le la les de des du et à en un une pour sur dans par au aux avec que qui est
a ont sont été ne pas plus ce cette ses son leur leurs mais ou entre contre après avant lors
tous toutes deux trois selon"""
)

FR_LEMMAS = """\
terrorisme terrorismes
terroriste terroristes
antiterroriste antiterroristes
sanction sanctions sanctionné sanctionnés
renseignement renseignements
assemblée assemblées
conseil conseils
résolution résolutions
sécurité
ministre ministres
ministère ministères
parlement parlements parlementaire parlementaires
gouvernement gouvernements gouvernemental
élection élections élu élus électoral
vote votes voté votée
loi lois
cour cours tribunal tribunaux
rapport rapports
réunion réunions réuni
session sessions
délégation délégations
comité comités
traité traités
accord accords
négociation négociations négocier négocié
conflit conflits
trêve trêves
réfugié réfugiés réfugiée
migrant migrants migration migrations
frontière frontières
attaque attaques attaqué
violence violences violent violente
arme armes armement
nucléaire nucléaires
missile missiles
drone drones
cyberattaque cyberattaques
artificielle artificielles
technologie technologies technologique
données
confidentialité
réglementation réglementations réglementer
économie économies économique économiques
commerce commercial commerciale
tarif tarifs
budget budgets budgétaire
finance finances financier financière financement
banque banques bancaire
développement développements
climat climatique climatiques
émission émissions
énergie énergies énergétique
pétrole
eau eaux
alimentation alimentaire
santé
pandémie pandémies
vaccin vaccins vaccination
éducation
enfant enfants
femme femmes
droit droits
liberté libertés
presse
journaliste journalistes
médias
police policier policiers
crime crimes criminel criminalité
corruption
enquête enquêtes enquêter
procureur procureurs
juge juges
prison prisons prisonnier prisonniers
armée armées
militaire militaires
troupe troupes
maintien
mission missions
opération opérations
aide aides
humanitaire humanitaires
crise crises
catastrophe catastrophes
inondation inondations
sécheresse sécheresses
famine
pauvreté
inégalité inégalités
stratégie stratégies stratégique
politique politiques
réforme réformes
sommet sommets
président présidente présidentielle
secrétaire
envoyé envoyée
ambassadeur ambassadeurs
ambassade ambassades
déclaration déclarations déclaré
convention conventions
protocole protocoles
membre membres
état états
nation nations national nationale
international internationale internationaux
région régions régional régionale
mondial mondiale
coopération coopérer
partenariat partenariats partenaire partenaires
dialogue dialogues
paix
guerre guerres
extrémisme extrémiste extrémistes
radicalisation
recrutement recruter recruté
blanchiment
contrebande
traite
otage otages
enlèvement enlèvements enlevé
explosion explosions explosif explosifs
bombe bombes bombardement
victime victimes
civil civils
infrastructure infrastructures
surveillance
espionnage
espion espions
déclare déclarent
annonce annoncé annoncée
appelle appelé
exhorte exhorté
condamne condamné condamnée
salue salué
adopte adopté adoptée
approuve approuvé
rejette rejeté
avertit averti
préoccupation préoccupations
soutien soutient soutenu
année années an ans
semaine semaines
jour jours
mois
pays
personnes
ville villes
capitale
responsable responsables
groupe groupes
programme programmes
projet projets
fonds
million millions
milliard milliards
public publique
social sociale
local locale
conjoint conjointe
urgent urgente
grave graves
important importante
""".splitlines()

FR_PHRASES = _phrases(
    """conseil de sécurité|assemblée générale|intelligence artificielle|droits de l'homme|
nations unies|parlement européen|changement climatique|lutte contre le terrorisme|
blanchiment d'argent|combattants étrangers|premier ministre|affaires étrangères|état de droit|
société civile|développement durable|états membres|secrétaire général|processus de paix|
maîtrise des armements|crime organisé"""
)

NAMES = {
    "en": _words(
        """Sudan Ukraine Russia France Syria Gaza Israel Iran China Sahel Mali Niger
        Afghanistan Yemen Libya Haiti Myanmar Guterres Brussels Geneva Vienna Moscow Paris
        NATO OSCE UNESCO Europol Interpol UNODC CIS"""
    ),
    "ru": _words(
        """Судан Украина Россия Франция Сирия Газа Израиль Иран Китай Сахель Мали Нигер
        Афганистан Йемен Ливия Гаити Мьянма Гутерриш Брюссель Женева Вена Москва Париж
        НАТО ОБСЕ ЮНЕСКО СНГ ОДКБ МПА"""
    ),
    "fr": _words(
        """Soudan Ukraine Russie France Syrie Gaza Israël Iran Chine Sahel Mali Niger
        Afghanistan Yémen Libye Haïti Myanmar Guterres Bruxelles Genève Vienne Moscou Paris
        OTAN OSCE UNESCO Europol Interpol ONUDC CEI"""
    ),
}

#: Syllables of the long tail: rare words (jargon, names, places) that real text is
#: full of, each in a small share of the items. None of them has a z or an x, which
#: the words of rules that occur nowhere have.
TAIL_SYLLABLES = {
    "en": _words("ka lo ven tra bel dor fin gar hul pek ros sil tov mar nel ster ton ward lin"),
    "ru": _words("ка ло вен тра бел дор фин гар хул пек рос сил тов мар нел стер тон вар лин"),
    "fr": _words("ca lo ven tra bel dor fin gar hul pec ros sil tov mar nel ster ton var lin"),
}
TAIL_ENDINGS = {
    "en": ("", "", "s", "er", "ing", "ia"),
    "ru": ("", "ов", "ий", "ая", "ск", "ия"),
    "fr": ("", "", "é", "eau", "ière", "ois"),
}
#: Rare words per language.
TAIL_SIZE = 4000
#: Syllables of words that occur in no item.
UNSEEN_SYLLABLES = _words("zor blax quix vex zyg xan zel oxa braz kez")

TAGS = _words("un eu nato press security ai human-rights economy parliament ministry")
AUTHORS = _phrases("Anna Petrova|John Smith|Marie Dubois|Ivan Sokolov|UN News|Press Office")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Words of one language: function words, lemmas (with forms) by frequency, phrases."""

    lang: str
    function: tuple[str, ...]
    #: Each lemma's forms; the first is the form rules use.
    lemmas: tuple[tuple[str, ...], ...]
    phrases: tuple[str, ...]
    names: tuple[str, ...]
    feeds: tuple[str, ...]
    #: The long tail: rare words, drawn uniformly.
    tail: tuple[str, ...]


def _vocabulary(
    lang: str, function: list[str], lemmas: list[str], phrases: list[str]
) -> Vocabulary:
    forms = [tuple(line.split()) for line in lemmas if line.strip()]
    # A fixed shuffle decides which lemmas are frequent (Zipf rank), independent of
    # the alphabetical-ish order above, but the same in every run.
    random.Random(f"rank-{lang}").shuffle(forms)
    tail_rng = random.Random(f"tail-{lang}")
    tail: dict[str, None] = {}
    while len(tail) < TAIL_SIZE:
        syllables = tail_rng.choices(TAIL_SYLLABLES[lang], k=tail_rng.randint(2, 3))
        tail["".join(syllables) + tail_rng.choice(TAIL_ENDINGS[lang])] = None
    feeds = tuple(
        f"{org}-{lang}" for org in ("un-news", "unodc", "parliament", "ministry", "think")
    )
    return Vocabulary(
        lang=lang,
        function=tuple(function),
        lemmas=tuple(forms),
        phrases=tuple(p.strip() for p in phrases if p.strip()),
        names=tuple(NAMES[lang]),
        feeds=feeds,
        tail=tuple(tail),
    )


VOCABULARIES = {
    "en": _vocabulary("en", EN_FUNCTION, EN_LEMMAS, EN_PHRASES),
    "ru": _vocabulary("ru", RU_FUNCTION, RU_LEMMAS, RU_PHRASES),
    "fr": _vocabulary("fr", FR_FUNCTION, FR_LEMMAS, FR_PHRASES),
}
LANGUAGES = ("en", "ru", "fr")
LANGUAGE_WEIGHTS = (0.5, 0.25, 0.25)


def _zipf(n: int, s: float = 1.0) -> list[float]:
    """Cumulative Zipf weights for ranks 0..n-1."""
    return list(accumulate(1.0 / (rank + 2) ** s for rank in range(n)))


# ---------------------------------------------------------------------------- items


class _Writer:
    """Draws words of one language; all randomness from the generator passed in."""

    def __init__(self, vocab: Vocabulary, rng: random.Random) -> None:
        self.vocab = vocab
        self.rng = rng
        self.lemma_weights = _zipf(len(vocab.lemmas), 1.0)
        self.function_weights = _zipf(len(vocab.function), 0.7)
        self.tail_weights = _zipf(len(vocab.tail), 1.0)
        # Token kinds: function word, vocabulary word, long-tail word, name, set phrase,
        # number. The long tail is what keeps most words rare, as in real text.
        self.kinds = ("f", "c", "t", "n", "p", "d")
        self.kind_weights = list(accumulate((0.41, 0.13, 0.355, 0.05, 0.005, 0.05)))

    def words(self, count: int, kinds: Sequence[str] | None = None) -> list[str]:
        rng, vocab = self.rng, self.vocab
        drawn = kinds or rng.choices(self.kinds, cum_weights=self.kind_weights, k=count)
        lemmas = rng.choices(vocab.lemmas, cum_weights=self.lemma_weights, k=count)
        functions = rng.choices(vocab.function, cum_weights=self.function_weights, k=count)
        tails = rng.choices(vocab.tail, cum_weights=self.tail_weights, k=count)
        out: list[str] = []
        for kind, lemma, function, tail in zip(drawn, lemmas, functions, tails, strict=False):
            if kind == "f":
                out.append(function)
            elif kind == "c":
                out.append(lemma[0] if len(lemma) == 1 else rng.choice(lemma))
            elif kind == "t":
                out.append(tail)
            elif kind == "n":
                out.append(rng.choice(vocab.names))
            elif kind == "p":
                out.append(rng.choice(vocab.phrases))
            else:
                out.append(str(rng.randint(2, 2030)))
        return out

    def sentence(self) -> str:
        words = self.words(self.rng.randint(8, 22))
        text = " ".join(words)
        punct = self.rng.choices((".", ".", ".", "?", ";"), k=1)[0]
        return text[:1].upper() + text[1:] + punct

    def title(self) -> str:
        n = self.rng.randint(5, 11)
        kinds = self.rng.choices(
            ("c", "f", "t", "n", "p"), weights=(0.3, 0.2, 0.34, 0.12, 0.04), k=n
        )
        text = " ".join(self.words(n, kinds))
        return text[:1].upper() + text[1:]


def generate_items(count: int, seed: int = 1) -> list[MatchInput]:
    """``count`` items of about 1 KB each (title + content), deterministic for ``seed``."""
    rng = random.Random(seed)
    writers = {lang: _Writer(VOCABULARIES[lang], rng) for lang in LANGUAGES}
    items: list[MatchInput] = []
    langs = rng.choices(LANGUAGES, weights=LANGUAGE_WEIGHTS, k=count)
    for lang in langs:
        writer = writers[lang]
        title = writer.title()
        target = rng.randint(850, 1050) - len(title)
        sentences: list[str] = []
        size = 0
        while size < target:
            sentence = writer.sentence()
            sentences.append(sentence)
            size += len(sentence) + 1
        content = " ".join(sentences)[: max(target, 0)].rstrip()
        author = rng.choice(AUTHORS) if rng.random() < 0.6 else ""
        items.append(
            MatchInput(
                title=title,
                content=content,
                author=author,
                feed=rng.choice(writer.vocab.feeds),
                tags=tuple(sorted(rng.sample(TAGS, rng.choice((0, 1, 1, 2, 3))))),
                lang=lang,
            )
        )
    return items


# ---------------------------------------------------------------------------- rules
#
# A rule is a small tree of tuples, rendered three ways: the full rule language,
# the first-version syntax, and naive regexes.
#
#   ("term", word)  ("phrase", (w1, w2, ...), slop | None)  ("exact", word)
#   ("prefix", prefix, source_word)  ("regex", pattern, source_word)
#   ("and" | "or" | "not", left, right)  ("near", left, right, n, ordered)
#   ("field", "title" | "content" | "author", node)  ("tag", tag)  ("lang", code)

Node = tuple[Any, ...]

#: Rule kinds and their share of a rule set (percent).
RULE_MIX: tuple[tuple[str, int], ...] = (
    ("term", 18),
    ("phrase", 13),
    ("and", 16),
    ("or", 10),
    ("not", 7),
    ("near", 7),
    ("onear", 2),
    ("title", 7),
    ("content", 2),
    ("author", 1),
    ("lang", 5),
    ("tag", 3),
    ("prefix", 4),
    ("slop", 2),
    ("exact", 2),
    ("regex", 1),
)

#: Share of rule words that occur nowhere in the items (names, jargon of other days).
UNSEEN_SHARE = 0.30
#: Share of rule words from the long tail (each in a fraction of a percent of items).
TAIL_SHARE = 0.45


class RuleGenerator:
    """Draws rules; the n first rules are the same whatever the total asked for."""

    def __init__(self, seed: int = 2) -> None:
        self.rng = random.Random(seed)
        kinds, weights = zip(*RULE_MIX, strict=True)
        self.kinds: tuple[str, ...] = kinds
        self.kind_weights = list(accumulate(weights))

    def word(self, lang: str, *, common: bool = False) -> str:
        """A word for a rule: common (top lemmas), or like real alert terms mostly rare."""
        rng = self.rng
        lemmas = VOCABULARIES[lang].lemmas
        if common:
            return lemmas[rng.randrange(min(12, len(lemmas)))][0]
        draw = rng.random()
        if draw < UNSEEN_SHARE:
            return "".join(rng.choices(UNSEEN_SYLLABLES, k=rng.randint(2, 3)))
        if draw < UNSEEN_SHARE + TAIL_SHARE:
            return rng.choice(VOCABULARIES[lang].tail)
        # A lemma from the less frequent 60% of the vocabulary.
        return lemmas[rng.randrange(len(lemmas) * 2 // 5, len(lemmas))][0]

    def atom(self, lang: str) -> Node:
        rng = self.rng
        if rng.random() < 0.25:
            return self.phrase(lang)
        return ("term", self.word(lang, common=rng.random() < 0.04))

    def phrase(self, lang: str, slop: int | None = None) -> Node:
        rng = self.rng
        if rng.random() < 0.35:
            words = tuple(rng.choice(VOCABULARIES[lang].phrases).split())
        else:
            words = (self.word(lang), self.word(lang))
        return ("phrase", words, slop)

    def rule(self) -> Node:
        rng = self.rng
        lang = rng.choices(LANGUAGES, weights=LANGUAGE_WEIGHTS, k=1)[0]
        kind = rng.choices(self.kinds, cum_weights=self.kind_weights, k=1)[0]
        if kind == "term":
            return ("term", self.word(lang, common=rng.random() < 0.02))
        if kind == "phrase":
            return self.phrase(lang)
        if kind == "slop":
            phrase = self.phrase(lang, slop=rng.randint(1, 3))
            return phrase if len(phrase[1]) > 1 else ("phrase", (*phrase[1], "a"), phrase[2])
        if kind in ("and", "or", "not"):
            return (kind, self.atom(lang), self.atom(lang))
        if kind in ("near", "onear"):
            return ("near", self.atom(lang), self.atom(lang), rng.randint(2, 10), kind == "onear")
        if kind in ("title", "content"):
            return ("field", kind, self.atom(lang))
        if kind == "author":
            return ("field", "author", ("term", rng.choice(AUTHORS).split()[-1].lower()))
        if kind == "lang":
            return ("and", ("lang", lang), self.atom(lang))
        if kind == "tag":
            return ("and", ("tag", rng.choice(TAGS)), self.atom(lang))
        word = self.word(lang)
        if kind == "prefix":
            return ("prefix", word[: max(5, len(word) - 2)], word)
        if kind == "exact":
            forms = next((f for f in VOCABULARIES[lang].lemmas if f[0] == word), (word,))
            return ("exact", rng.choice(forms))
        # regex: the lemma's common stem and an alternation of its endings
        forms = next((f for f in VOCABULARIES[lang].lemmas if f[0] == word), (word, word + "s"))
        stem = _common_prefix(forms) or word
        endings = sorted({f[len(stem) :] for f in forms} - {""}) or ["s"]
        return ("regex", f"{stem}({'|'.join(endings)})?", word)


def _common_prefix(words: Sequence[str]) -> str:
    first = min(words)
    last = max(words)
    end = 0
    while end < min(len(first), len(last)) and first[end] == last[end]:
        end += 1
    return first[:end]


def generate_rules(count: int, seed: int = 2) -> list[Node]:
    """``count`` rules, deterministic for ``seed``; a prefix of a longer set."""
    generator = RuleGenerator(seed)
    return [generator.rule() for _ in range(count)]


def render_full(node: Node) -> str:
    """The rule in the full rule language of issue 3."""
    kind = node[0]
    if kind == "term":
        return str(node[1])
    if kind == "phrase":
        text = '"' + " ".join(node[1]) + '"'
        return text if node[2] is None else f"{text}~{node[2]}"
    if kind == "exact":
        return f"={node[1]}"
    if kind == "prefix":
        return f"{node[1]}*"
    if kind == "regex":
        return f"/{node[1]}/"
    if kind == "tag":
        return f"tag:{node[1]}"
    if kind == "lang":
        return f"lang:{node[1]}"
    if kind == "field":
        return f"{node[1]}:{_group(node[2])}"
    if kind == "near":
        op = "ONEAR" if node[4] else "NEAR"
        return f"{_group(node[1])} {op}/{node[3]} {_group(node[2])}"
    return f"{_group(node[1])} {kind.upper()} {_group(node[2])}"


def _group(node: Node) -> str:
    text = render_full(node)
    return f"({text})" if node[0] in ("and", "or", "not", "near") else text


def render_simple(node: Node) -> str:
    """The closest first-version query: OR of juxtaposed words and phrases."""
    alternatives = _dnf(node)[:8]
    return " OR ".join(" ".join(conj) for conj in alternatives if conj) or "zzzzunmatched"


def _dnf(node: Node) -> list[list[str]]:
    kind = node[0]
    if kind in ("term", "exact"):
        return [[str(node[1])]]
    if kind in ("prefix", "regex"):
        return [[str(node[2])]]
    if kind == "phrase":
        return [['"' + " ".join(node[1]) + '"']]
    if kind in ("tag", "lang"):
        return [[]]
    if kind == "field":
        return _dnf(node[2])
    if kind == "or":
        return _dnf(node[1]) + _dnf(node[2])
    if kind == "not":
        return _dnf(node[1])
    left, right = _dnf(node[1]), _dnf(node[2])  # and, near
    return [a + b for a in left for b in right][:8]


# ---------------------------------------------------------------------------- naive baseline


@dataclass(frozen=True, slots=True)
class NaiveItem:
    """An item as the naive loop sees it: the fields, and title + content joined once."""

    text: str
    title: str
    content: str
    author: str
    tags: frozenset[str]
    lang: str | None

    @classmethod
    def of(cls, item: MatchInput) -> NaiveItem:
        return cls(
            item.title + "\n" + item.content,
            item.title,
            item.content,
            item.author,
            frozenset(item.tags),
            item.lang,
        )


NaiveRule = Callable[[NaiveItem], bool]
_FLAGS = re.IGNORECASE


def _stem(word: str) -> str:
    return word[:-2] if len(word) > 5 else word


def _pattern(node: Node) -> str | None:
    """A regex for a term-like node (None for anything else)."""
    kind = node[0]
    if kind == "term":
        return rf"\b{re.escape(_stem(node[1]))}\w*"
    if kind == "exact":
        return rf"\b{re.escape(node[1])}\b"
    if kind == "prefix":
        return rf"\b{re.escape(node[1])}\w*"
    if kind == "regex":
        return rf"\b(?:{node[1]})\b"
    if kind == "phrase":
        gap = r"\W+" if node[2] is None else rf"\W+(?:\w+\W+){{0,{node[2]}}}"
        return r"\b" + gap.join(re.escape(w) for w in node[1]) + r"\w*"
    return None


def naive_rule(node: Node, field: str = "text") -> NaiveRule:
    """A per-rule predicate built from ``re`` patterns, evaluated the slow, obvious way."""
    kind = node[0]
    pattern = _pattern(node)
    if pattern is not None:
        search = re.compile(pattern, _FLAGS).search
        return lambda item: search(getattr(item, field)) is not None
    if kind == "tag":
        tag = node[1]
        return lambda item: tag in item.tags
    if kind == "lang":
        lang = node[1]
        return lambda item: item.lang == lang
    if kind == "field":
        return naive_rule(node[2], node[1])
    if kind == "near":
        a, b = _pattern(node[1]), _pattern(node[2])
        if a is not None and b is not None:
            gap = rf"\W+(?:\w+\W+){{0,{node[3] - 1}}}"
            either = f"{a}{gap}{b}" if node[4] else f"{a}{gap}{b}|{b}{gap}{a}"
            search = re.compile(either, _FLAGS).search
            return lambda item: search(getattr(item, field)) is not None
        kind = "and"
    left, right = naive_rule(node[1], field), naive_rule(node[2], field)
    if kind == "and":
        return lambda item: left(item) and right(item)
    if kind == "or":
        return lambda item: left(item) or right(item)
    return lambda item: left(item) and not right(item)  # not


# ---------------------------------------------------------------------------- measuring


def detect_syntax() -> str:
    """ "full" if ``feedwatch.rules`` understands ``AND``, else "simple" (the first version)."""
    try:
        matcher = compile_rules([RuleSpec("probe", "alpha AND beta")])
    except RuleSyntaxError:
        return "simple"
    found = matcher.match(MatchInput(title="", content="alpha beta"))
    return "full" if found else "simple"


def rule_specs(nodes: Sequence[Node], syntax: str) -> list[RuleSpec]:
    render = render_full if syntax == "full" else render_simple
    return [RuleSpec(f"r{n:05d}", render(node)) for n, node in enumerate(nodes)]


def pin_to_one_cpu() -> str:
    """Pin this process (and its children) to one CPU; say what was done."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no os.sched_setaffinity on this platform)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu} of {os.cpu_count()}"


@dataclass
class Result:
    """One rule-set size: the matcher's runs and the naive loop's."""

    rules: int
    syntax: str
    items: int
    #: Items each matcher run went through (fewer than ``items`` if the budget cut it).
    items_timed: int = 0
    compile_s: list[float] = field(default_factory=list)
    match_s: list[float] = field(default_factory=list)
    #: (item, rule) matches per run: identical runs are a sanity check.
    matches: list[int] = field(default_factory=list)
    items_matched: int = 0
    naive_items: int = 0
    naive_s: list[float] = field(default_factory=list)
    naive_matches: int = 0

    @property
    def items_per_s(self) -> float:
        return self.items_timed / statistics.median(self.match_s)

    @property
    def naive_items_per_s(self) -> float:
        return self.naive_items / statistics.median(self.naive_s) if self.naive_s else 0.0

    @property
    def speedup(self) -> float:
        naive = self.naive_items_per_s
        return self.items_per_s / naive if naive else float("nan")


def time_matcher(
    specs: Sequence[RuleSpec], items: Sequence[MatchInput], result: Result, budget: float
) -> None:
    """One run: compile, then match every item (or until ``budget`` seconds on run one)."""
    gc.collect()
    started = time.perf_counter()
    matcher: Matcher = compile_rules(specs)
    result.compile_s.append(time.perf_counter() - started)
    limit = result.items_timed or len(items)
    first_run = not result.match_s
    matches = matched_items = done = 0
    match = matcher.match
    started = time.perf_counter()
    for item in items[:limit]:
        found = match(item)
        if found:
            matches += len(found)
            matched_items += 1
        done += 1
        if first_run and budget and done % 64 == 0 and time.perf_counter() - started > budget:
            break
    result.match_s.append(time.perf_counter() - started)
    result.items_timed = done
    result.matches.append(matches)
    result.items_matched = matched_items


def time_naive(
    nodes: Sequence[Node], items: Sequence[MatchInput], runs: int, budget: float
) -> tuple[list[float], int]:
    """The naive loop over ``items``: as many runs as fit in ``budget`` (1 to ``runs``)."""
    rules = [naive_rule(node) for node in nodes]
    subjects = [NaiveItem.of(item) for item in items]
    times: list[float] = []
    matches = 0
    spent = 0.0
    while len(times) < runs and (not times or spent < budget):
        gc.collect()
        matches = 0
        started = time.perf_counter()
        for subject in subjects:
            for rule in rules:
                if rule(subject):
                    matches += 1
        times.append(time.perf_counter() - started)
        spent += times[-1]
    return times, matches


def measure_memory(count: int, syntax: str, seed: int = 2) -> dict[str, float]:
    """Memory of a compiled set of ``count`` rules (run this in a fresh process).

    ``rss_delta_mib``: resident set growth over the first compile (the matcher kept
    alive); ``tracemalloc_peak_mib`` / ``tracemalloc_retained_mib``: Python
    allocations during a second compile, at their peak and what the matcher keeps.
    """
    specs = rule_specs(generate_rules(count, seed), syntax)
    gc.collect()
    before = _rss_bytes()
    first = compile_rules(specs)
    gc.collect()
    grown = _rss_bytes() - before
    tracemalloc.start()
    second = compile_rules(specs)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del first, second
    mib = 1024 * 1024
    return {
        "rules": count,
        "rss_delta_mib": grown / mib,
        "tracemalloc_peak_mib": peak / mib,
        "tracemalloc_retained_mib": retained / mib,
    }


def _rss_bytes() -> int:
    """Current resident set size (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def memory_in_child(count: int, syntax: str, seed: int) -> dict[str, float]:
    """:func:`measure_memory` in a fresh interpreter, so nothing else is resident."""
    proc = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(count), "--syntax", syntax],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RULES_BENCH_SEED": str(seed)},
    )
    data: dict[str, float] = json.loads(proc.stdout)
    return data


# ---------------------------------------------------------------------------- report


def run_benchmark(
    *,
    items: int,
    rule_counts: Sequence[int],
    runs: int,
    naive_items: int,
    naive_budget: float,
    budget: float,
    syntax: str,
    memory: bool,
    seed: int = 1,
    pin: bool = True,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Generate, time, print the table; return the numbers (for --json and tests)."""
    pinned = pin_to_one_cpu() if pin else "not pinned (asked not to)"
    started = time.perf_counter()
    data = generate_items(items, seed)
    generated = time.perf_counter() - started
    size = statistics.mean(len(i.title) + len(i.content) for i in data)
    langs = {lang: sum(i.lang == lang for i in data) for lang in LANGUAGES}
    all_rules = generate_rules(max(rule_counts), seed + 1)
    out(
        f"feedwatch {__version__}, Python {platform.python_version()}, {platform.machine()}; "
        f"{pinned}; single-threaded"
    )
    matcher_kind = "full rule language" if syntax == "full" else "first-version (simple syntax)"
    out(f"matcher: feedwatch.rules ({matcher_kind}); rules rendered in {syntax} syntax")
    out(
        f"items: {len(data):,} generated in {generated:.1f}s (seed {seed}), mean "
        f"{size:,.0f} characters; " + ", ".join(f"{k} {v:,}" for k, v in langs.items())
    )
    if syntax == "simple":
        out("  (the first-version syntax has no AND/NOT/NEAR/scopes: rules are approximated)")
    out(f"sample rules: {' | '.join(s.query for s in rule_specs(all_rules[:6], syntax))}")
    out("")

    results: list[Result] = []
    for count in rule_counts:
        nodes = all_rules[:count]
        specs = rule_specs(nodes, syntax)
        result = Result(rules=count, syntax=syntax, items=len(data))
        for run in range(runs):
            time_matcher(specs, data, result, budget)
            out(
                f"  {count:>6,} rules, run {run + 1}: compile {result.compile_s[-1]:.2f}s, "
                f"match {result.match_s[-1]:.2f}s over {result.items_timed:,} items, "
                f"{result.matches[-1]:,} matches"
            )
            if result.items_timed < len(data):
                out(f"  {count:>6,} rules: over the {budget:g}s budget; one run only")
                break
        subset = data[: min(naive_items, len(data))]
        result.naive_s, result.naive_matches = time_naive(nodes, subset, runs, naive_budget)
        result.naive_items = len(subset)
        out(
            f"  {count:>6,} rules, naive: {len(result.naive_s)} run(s) over {len(subset):,} items, "
            f"median {statistics.median(result.naive_s):.2f}s, {result.naive_matches:,} matches"
        )
        if len(set(result.matches)) > 1:
            out(f"  WARNING: match counts differ between runs: {result.matches}")
        results.append(result)

    mem: dict[str, float] | None = None
    if memory:
        mem = memory_in_child(max(rule_counts), syntax, seed + 1)

    out("")
    out(f"median of {runs} runs; items/s = items matched per second of Matcher.match, one core")
    header = (
        f"{'rules':>7} {'compile s':>9} {'items/s':>10} {'min-max items/s':>17} "
        f"{'runs':>4} {'items':>7} {'matches':>9} {'per item':>8} {'items hit':>9} "
        f"{'naive items/s':>13} {'naive on':>9} {'speedup':>8}"
    )
    out(header)
    out("-" * len(header))
    for r in results:
        rates = [r.items_timed / s for s in r.match_s]
        speedup = f"{r.speedup:,.0f}x" if r.speedup >= 10 else f"{r.speedup:.2f}x"
        out(
            f"{r.rules:>7,} {statistics.median(r.compile_s):>9.2f} {r.items_per_s:>10,.0f} "
            f"{min(rates):>8,.0f}-{max(rates):<8,.0f} {len(r.match_s):>4} {r.items_timed:>7,} "
            f"{r.matches[0]:>9,} {r.matches[0] / r.items_timed:>8.2f} {r.items_matched:>9,} "
            f"{r.naive_items_per_s:>13,.1f} {f'{r.naive_items} x {len(r.naive_s)}':>9} "
            f"{speedup:>8}"
        )
    out("")
    out(
        "naive: per rule, Python re patterns (IGNORECASE, \\b, stem + \\w*) in a plain loop, "
        "on the first items only ('naive on' = items x runs);"
    )
    out(
        "its match counts approximate the rules (no stemming, no tokeniser) and are not "
        "expected to equal the matcher's."
    )
    if mem is not None:
        out(
            f"compiled {mem['rules']:,.0f}-rule set: RSS +{mem['rss_delta_mib']:.1f} MiB; "
            f"tracemalloc peak {mem['tracemalloc_peak_mib']:.1f} MiB during compile, "
            f"{mem['tracemalloc_retained_mib']:.1f} MiB retained"
        )
    checks = _floors(results)
    for line in checks:
        out(line)
    return {
        "pinned": pinned,
        "syntax": syntax,
        "items": len(data),
        "mean_item_chars": size,
        "languages": langs,
        "results": [
            asdict(r)
            | {
                "items_per_s": r.items_per_s,
                "naive_items_per_s": r.naive_items_per_s,
                "speedup": r.speedup,
            }
            for r in results
        ],
        "memory": mem,
        "floors": checks,
    }


def _floors(results: Iterable[Result]) -> list[str]:
    """The floors of issue 3, for the sizes that were run."""
    by_size = {r.rules: r for r in results}
    lines = []
    if 100 in by_size:
        rate = by_size[100].items_per_s
        lines.append(
            f"floor: >= 10,000 items/s at 100 rules: {rate:,.0f} "
            f"{'PASS' if rate >= 10_000 else 'FAIL'}"
        )
    if 10_000 in by_size:
        r = by_size[10_000]
        lines.append(
            f"floor: >= 2,000 items/s at 10,000 rules: {r.items_per_s:,.0f} "
            f"{'PASS' if r.items_per_s >= 2_000 else 'FAIL'}"
        )
        lines.append(
            f"floor: >= 100x the naive loop at 10,000 rules: {r.speedup:,.1f}x "
            f"{'PASS' if r.speedup >= 100 else 'FAIL'}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=50_000, help="items to generate")
    parser.add_argument(
        "--rules", default="1,100,1000,10000", help="rule-set sizes, comma-separated"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per size (median)")
    parser.add_argument("--naive-items", type=int, default=200, help="items for the naive loop")
    parser.add_argument(
        "--naive-budget", type=float, default=30.0, help="seconds of naive runs per size"
    )
    parser.add_argument(
        "--budget", type=float, default=120.0, help="seconds a matcher run may take (0: no limit)"
    )
    parser.add_argument("--syntax", choices=("auto", "full", "simple"), default="auto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument(
        "--quick", action="store_true", help="2,000 items, 1/100/1,000 rules, 1 run, 10 s budgets"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    syntax = detect_syntax() if args.syntax == "auto" else args.syntax
    if args.memory_child is not None:
        seed = int(os.environ.get("RULES_BENCH_SEED", "2"))
        print(json.dumps(measure_memory(args.memory_child, syntax, seed)))
        return 0
    if args.quick:
        args.items, args.rules, args.runs = 2_000, "1,100,1000", 1
        args.naive_items, args.naive_budget, args.budget = 50, 5.0, 10.0
    counts = [int(c) for c in args.rules.split(",") if c.strip()]
    numbers = run_benchmark(
        items=args.items,
        rule_counts=counts,
        runs=args.runs,
        naive_items=args.naive_items,
        naive_budget=args.naive_budget,
        budget=args.budget,
        syntax=syntax,
        memory=not args.no_memory,
        seed=args.seed,
    )
    if args.json is not None:
        args.json.write_text(json.dumps(numbers, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
