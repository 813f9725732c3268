/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_schema.h — the models the query and serve harnesses run
 * against: a copy of tests/data/blog_models.json (Author, Profile, Entry,
 * Tag, Comment: every field type, foreign keys, a one-to-one, a
 * many_to_many, a uuid key, a self reference), embedded so a harness
 * reads no file.  fuzz_schema() loads it once; it lives until exit.
 */
#ifndef DORM_FUZZ_SCHEMA_H
#define DORM_FUZZ_SCHEMA_H

#include "fuzz/fuzz.h"

static const char fuzz_blog_models[] =
    "{\"models\":[{\"name\":\"Author\",\"fields\":[{\"name\":\"name\",\"type\":"
    "\"varchar\","
    "\"max_length\":100},{\"name\":\"email\",\"type\":\"varchar\",\"max_"
    "length\":254,\"u"
    "nique\":true},{\"name\":\"age\",\"type\":\"integer\",\"null\":true},{"
    "\"name\":\"coun"
    "try\",\"type\":\"varchar\",\"max_length\":2,\"default\":\"US\","
    "\"choices\":[[\"US\",\""
    "United States\"],[\"GB\",\"United "
    "Kingdom\"],[\"FR\",\"France\"]]},{\"name\":\"bio"
    "\",\"type\":\"text\",\"default\":\"\"},{\"name\":\"joined\",\"type\":"
    "\"datetime\"},{\"na"
    "me\":\"is_active\",\"type\":\"boolean\",\"default\":true}],\"indexes\":[{"
    "\"fields\""
    ":[\"name\",\"age\"]}],\"unique_together\":[[\"name\",\"email\"]],"
    "\"ordering\":[\"-j"
    "oined\",\"name\"]},{\"name\":\"Profile\",\"fields\":[{\"name\":\"author\","
    "\"type\":\"o"
    "ne_to_one\",\"to\":\"Author\",\"on_delete\":\"cascade\",\"related_name\":"
    "\"profile"
    "\"},{\"name\":\"website\",\"type\":\"varchar\",\"max_length\":200,"
    "\"null\":true},{\""
    "name\":\"avatar\",\"type\":\"binary\",\"null\":true},{\"name\":"
    "\"settings\",\"type\":"
    "\"json\",\"default\":{\"theme\":\"light\",\"emails\":true}}]},{\"name\":"
    "\"Entry\",\"t"
    "able\":\"blog_entry\",\"fields\":[{\"name\":\"author\",\"type\":\"foreign_"
    "key\",\"to"
    "\":\"Author\",\"on_delete\":\"cascade\",\"related_name\":\"entries\"},{"
    "\"name\":\"he"
    "adline\",\"type\":\"varchar\",\"max_length\":255},{\"name\":\"slug\","
    "\"type\":\"varc"
    "har\",\"max_length\":50,\"unique\":true},{\"name\":\"body\",\"type\":"
    "\"text\",\"defa"
    "ult\":\"\"},{\"name\":\"pub_date\",\"type\":\"date\"},{\"name\":\"mod_"
    "date\",\"type\":\""
    "date\",\"null\":true},{\"name\":\"rating\",\"type\":\"float\",\"default\":"
    "0},{\"name"
    "\":\"price\",\"type\":\"decimal\",\"max_digits\":8,\"decimal_places\":2,"
    "\"default\""
    ":\"0.00\"},{\"name\":\"n_comments\",\"type\":\"integer\",\"default\":0},{"
    "\"name\":\"n"
    "_pingbacks\",\"type\":\"smallint\",\"default\":0},{\"name\":\"views\","
    "\"type\":\"big"
    "int\",\"default\":0,\"db_index\":true},{\"name\":\"status\",\"type\":"
    "\"varchar\",\"m"
    "ax_length\":10,\"default\":\"draft\",\"choices\":[\"draft\",\"published\","
    "\"archiv"
    "ed\"]},{\"name\":\"tags\",\"type\":\"many_to_many\",\"to\":\"Tag\","
    "\"related_name\":\""
    "entries\"},{\"name\":\"metadata\",\"type\":\"json\",\"null\":true}],"
    "\"indexes\":[{\""
    "fields\":[\"pub_date\",\"status\"],\"name\":\"entry_pub_status_idx\"}],"
    "\"orderin"
    "g\":[\"-pub_date\",\"headline\"]},{\"name\":\"Tag\",\"fields\":[{\"name\":"
    "\"id\",\"typ"
    "e\":\"bigauto\",\"primary_key\":true},{\"name\":\"name\",\"type\":"
    "\"varchar\",\"max_"
    "length\":50,\"unique\":true}],\"ordering\":[\"name\"]},{\"name\":"
    "\"Comment\",\"fie"
    "lds\":[{\"name\":\"uid\",\"type\":\"uuid\",\"primary_key\":true},{"
    "\"name\":\"entry\","
    "\"type\":\"foreign_key\",\"to\":\"Entry\",\"on_delete\":\"cascade\","
    "\"related_name\""
    ":\"comments\"},{\"name\":\"parent\",\"type\":\"foreign_key\",\"to\":"
    "\"Comment\",\"on_"
    "delete\":\"set_null\",\"null\":true,\"related_name\":\"replies\"},{"
    "\"name\":\"auth"
    "or_name\",\"type\":\"varchar\",\"max_length\":100,\"db_column\":"
    "\"author\"},{\"nam"
    "e\":\"body\",\"type\":\"text\"},{\"name\":\"posted_at\",\"type\":"
    "\"datetime\",\"defaul"
    "t\":\"2024-01-01T00:00:00Z\"},{\"name\":\"posted_time\",\"type\":\"time\","
    "\"null\":"
    "true},{\"name\":\"approved\",\"type\":\"boolean\",\"default\":false}],"
    "\"ordering\""
    ":[\"entry__pub_date\",\"-posted_at\"]}]}";

static inline const dorm_schema *fuzz_schema(void) {
  static dorm_schema *s;
  if (!s) {
    dorm_error err;
    dorm_error_clear(&err);
    s = dorm_schema_load_string(fuzz_blog_models, "blog_models.json", &err);
    if (!s) {
      fprintf(stderr, "fuzz: blog models: %s\n", err.message);
      abort();
    }
  }
  return s;
}

#endif /* DORM_FUZZ_SCHEMA_H */
